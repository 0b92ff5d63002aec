// NcclCommunicator on the GPUs of this machine: one thread per GPU (up to 4), each a rank of one
// NCCL clique, sums a float and a double device buffer and host values, and checks the sums
// against the closed form sum over ranks r of (r + 1) * i. Exits 77 (skipped) without a GPU.
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "progdiff/distributed/communicator.hpp"
#include "progdiff/distributed/cuda/nccl.hpp"

namespace {

struct FakeCuda {
  static constexpr const char* name() { return "cuda"; }
};
struct FakeCpu {
  static constexpr const char* name() { return "cpu"; }
};
static_assert(progdiff::distributed::CommunicatorFor<progdiff::distributed::NcclCommunicator, FakeCuda>);
static_assert(!progdiff::distributed::CommunicatorFor<progdiff::distributed::NcclCommunicator, FakeCpu>,
              "NCCL must refuse host (CPU back-end) tensors");

template <class T>
int check_device_sum(progdiff::distributed::NcclCommunicator& comm, int ranks) {
  constexpr int n = 1000;
  std::vector<T> host(n);
  for (int i = 0; i < n; ++i) host[static_cast<std::size_t>(i)] = static_cast<T>((comm.rank() + 1) * i);
  T* device = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&device), n * sizeof(T)) != cudaSuccess) return 1;
  cudaMemcpy(device, host.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  comm.all_reduce_sum(std::span<T>(device, n));
  cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost);
  cudaFree(device);
  int wrong = 0;
  const int factor = ranks * (ranks + 1) / 2;
  for (int i = 0; i < n; ++i) wrong += host[static_cast<std::size_t>(i)] != static_cast<T>(factor * i);
  return wrong;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("nccl_communicator_test: skipped, no CUDA device\n");
    return 77;
  }
  const int ranks = devices < 4 ? devices : 4;
  const ncclUniqueId id = progdiff::distributed::nccl_unique_id();
  std::vector<int> failures(static_cast<std::size_t>(ranks), 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        cudaSetDevice(r);
        cudaStream_t stream = nullptr;
        cudaStreamCreate(&stream);
        {
          progdiff::distributed::NcclCommunicator comm(id, r, ranks, stream);
          int& bad = failures[static_cast<std::size_t>(r)];
          bad += check_device_sum<float>(comm, ranks) + check_device_sum<double>(comm, ranks);
          double values[2] = {static_cast<double>(r), 1.0};
          comm.all_reduce_host(values);
          bad += values[0] != ranks * (ranks - 1) / 2.0 || values[1] != ranks;
          comm.barrier();
        }
        cudaStreamDestroy(stream);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        failures[static_cast<std::size_t>(r)] += 1;
      }
    });
  for (auto& t : threads) t.join();
  int total = 0;
  for (int f : failures) total += f;
  std::printf("nccl_communicator_test: %d rank(s) on %d GPU(s), %d wrong value(s)\n", ranks, devices, total);
  return total == 0 ? 0 : 1;
}
