#pragma once
// A small model made of nn layers (Linear -> SiLU -> Linear on [N, F] rows) for the training tests,
// and fixture loading.
#include <cstdint>
#include <string>

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

inline progdiff::io::SafetensorsFile read_train_fixture(const std::string& name) {
  return progdiff::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/train/" + name + ".safetensors");
}

}  // namespace train_test
