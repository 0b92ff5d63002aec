#pragma once
// NcclCommunicator: data-parallel training of CUDA back-end models over NCCL (shipped with the
// CUDA toolkit: nccl.h, libnccl), one GPU per rank. Reductions run on the stream the CUDA back end
// computes on (backend/cuda/context.cuh: Context::current().stream()), so they follow the
// backward's kernels without a device-wide wait, and the host waits for them before the
// optimizer reads the sums.
//
//   ncclUniqueId id;                       // made by rank 0 (nccl_unique_id()), sent to all ranks,
//   MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);   // e.g. over MPI
//   cudaSetDevice(local_rank);
//   NcclCommunicator comm(id, rank, size, Context::current().stream());
//   Trainer<Model, Schedule, SimpleObjective, NcclCommunicator> trainer(..., comm);
//
// Copies share the NCCL communicator; the last one destroys it. Needs nvcc or a host compiler
// with the CUDA toolkit's include directory and libnccl, libcudart.
#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "progdiff/core/error.hpp"

namespace progdiff::distributed {

/// rank 0's identifier of a new NCCL clique, to be sent to every rank before construction.
inline ncclUniqueId nccl_unique_id() {
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) throw IoError(std::string("ncclGetUniqueId failed: ") + ncclGetErrorString(r));
  return id;
}

class NcclCommunicator {
 public:
  static constexpr bool single_process = false;
  template <class B>
  static constexpr bool serves = std::string_view(B::name()) == "cuda";  // device memory only

  NcclCommunicator(const ncclUniqueId& id, int rank, int size, cudaStream_t stream)
      : rank_(rank), size_(size), stream_(stream) {
    ncclComm_t comm = nullptr;
    check(ncclCommInitRank(&comm, size, id, rank), "ncclCommInitRank");
    comm_ = std::shared_ptr<ncclComm>(comm, [](ncclComm_t c) { ncclCommDestroy(c); });
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&scratch_raw_), kHostScratch * sizeof(double)), "cudaMalloc");
    scratch_ = std::shared_ptr<double>(scratch_raw_, [](double* p) { cudaFree(p); });
  }

  int rank() const { return rank_; }
  int size() const { return size_; }

  /// Sums device buffers over the ranks, in place.
  void all_reduce_sum(std::span<float> values) { reduce(values.data(), values.size(), ncclFloat32); }
  void all_reduce_sum(std::span<double> values) { reduce(values.data(), values.size(), ncclFloat64); }

  /// Sums host values (losses, flags) through a device buffer, in pieces of kHostScratch.
  void all_reduce_host(std::span<double> values) {
    for (std::size_t done = 0; done < values.size(); done += kHostScratch) {
      const std::size_t n = values.size() - done < kHostScratch ? values.size() - done : kHostScratch;
      check_cuda(
          cudaMemcpyAsync(scratch_.get(), values.data() + done, n * sizeof(double), cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync");
      reduce(scratch_.get(), n, ncclFloat64);
      check_cuda(
          cudaMemcpyAsync(values.data() + done, scratch_.get(), n * sizeof(double), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync");
      check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    }
  }

  void barrier() {
    double zero[1] = {0.0};
    all_reduce_host(zero);
  }

 private:
  static constexpr std::size_t kHostScratch = 1 << 16;

  void reduce(void* data, std::size_t count, ncclDataType_t type) {
    check(ncclAllReduce(data, data, count, type, ncclSum, comm_.get(), stream_), "ncclAllReduce");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  void check(ncclResult_t r, const char* operation) const {
    if (r != ncclSuccess)
      throw IoError(std::string(operation) + " failed on rank " + std::to_string(rank_) + " of " +
                    std::to_string(size_) + ": " + ncclGetErrorString(r));
  }
  void check_cuda(cudaError_t e, const char* operation) const {
    if (e != cudaSuccess)
      throw IoError(std::string(operation) + " failed on rank " + std::to_string(rank_) + ": " + cudaGetErrorString(e));
  }

  int rank_, size_;
  cudaStream_t stream_;
  std::shared_ptr<ncclComm> comm_;
  double* scratch_raw_ = nullptr;
  std::shared_ptr<double> scratch_;
};

}  // namespace progdiff::distributed
