// A user's back end: the CPU back end with one kernel replaced is still a Backend, and
// tensors and layers instantiate on it.
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/nn/conv2d.hpp"

struct CountingCpu : progdiff::backend::Cpu {
  static constexpr const char* name() { return "counting-cpu"; }
  static inline int silu_calls = 0;
  template <class T>
  static void silu_forward(std::size_t n, const T* x, T* y) {
    ++silu_calls;
    progdiff::backend::Cpu::silu_forward(n, x, y);
  }
};

int main() {
  progdiff::nn::Conv2d<float, CountingCpu> conv({2, 3, 3, 1, 1, true});
  const auto y = conv.forward(progdiff::Tensor<float, CountingCpu>::zeros({1, 2, 4, 4}));
  return y.dim(1) == 3 ? 0 : 1;
}
