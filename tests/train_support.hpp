#pragma once
// A small model made of nn layers (Linear -> SiLU -> Linear on [N, F] rows) for the training tests,
// fixture loading, scratch paths, every weight of a model in one list, and an exception that
// stands for a killed process.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/nn/linear.hpp"
#include "progdiff/nn/silu.hpp"

namespace train_test {

using Cpu = progdiff::backend::Cpu;

template <class T>
class TinyMlp {
 public:
  using value_type = T;
  using backend_type = Cpu;

  TinyMlp(std::int64_t features, std::int64_t hidden, std::int64_t outputs = 0)
      : l1_({features, hidden, true}), l2_({hidden, outputs > 0 ? outputs : features, true}) {}

  void initialize(progdiff::Generator& gen) {
    l1_.initialize(gen);
    l2_.initialize(gen);
  }
  progdiff::Tensor<T, Cpu> forward(const progdiff::Tensor<T, Cpu>& x) {
    return l2_.forward(act_.forward(l1_.forward(x)));
  }
  progdiff::Tensor<T, Cpu> backward(const progdiff::Tensor<T, Cpu>& dy) {
    return l1_.backward(act_.backward(l2_.backward(dy)));
  }
  template <class F>
  void visit_parameters(F&& f, const std::string& prefix) {
    l1_.visit_parameters(f, progdiff::nn::scoped(prefix, "l1"));
    l2_.visit_parameters(f, progdiff::nn::scoped(prefix, "l2"));
  }

 private:
  progdiff::nn::Linear<T, Cpu> l1_, l2_;
  progdiff::nn::SiLU<T, Cpu> act_;
};

// The CUDA tests have no fixture directory.
#ifdef PROGDIFF_FIXTURES_DIR
inline progdiff::io::SafetensorsFile read_train_fixture(const std::string& name) {
  return progdiff::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/train/" + name + ".safetensors");
}
#endif

// Fresh paths under <temp>/<folder>/: one folder per test file, so that test binaries run side by
// side by ctest never share a file.
class ScratchDir {
 public:
  explicit ScratchDir(std::string folder) : folder_(std::move(folder)) {}

  // <temp>/<folder>/<name>, with whatever an earlier run left there removed; its parent exists.
  std::filesystem::path operator()(const std::string& name) const {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / folder_;
    std::filesystem::create_directories(dir);
    const std::filesystem::path p = dir / name;
    std::filesystem::remove_all(p);
    return p;
  }

 private:
  std::string folder_;
};

// Every parameter value of `m` in visiting order, each converted to E, to compare two models.
template <class E, class M>
std::vector<E> all_weights(M& m) {
  std::vector<E> w;
  m.visit_parameters(
      [&](const std::string&, auto& p) {
        for (E v : p.value.to_host()) w.push_back(v);
      },
      std::string());
  return w;
}

// Thrown from a step callback to stop a run midway, as a killed process would.
struct Killed {};

}  // namespace train_test
