// A 1x1 convolution with integer weights: forward and backward have closed forms, and every
// value is exact in float, so the check compares for equality.
//   x: [1, 2, 2, 2], channel 0 = 1 2 3 4, channel 1 = 10 20 30 40
//   weight: [3, 2, 1, 1] = [[1, 0], [0, 1], [2, -1]], bias = [0.5, -1, 0]
#include <cstdio>
#include <vector>

#include <progdiff/backend/cpu/cpu.hpp>
#include <progdiff/core/tensor.hpp>
#include <progdiff/nn/conv2d.hpp>

namespace {

using Tensor = progdiff::Tensor<float, progdiff::backend::Cpu>;

int mismatches = 0;

void expect_values(const char* what, const Tensor& t, const std::vector<float>& want) {
  const std::vector<float> got = t.to_host();
  if (got.size() != want.size()) {
    std::printf("%s: %zu values, expected %zu\n", what, got.size(), want.size());
    ++mismatches;
    return;
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i]) {
      std::printf("%s[%zu] = %g, expected %g\n", what, i, static_cast<double>(got[i]), static_cast<double>(want[i]));
      ++mismatches;
    }
  }
}

}  // namespace

int main() {
  progdiff::nn::Conv2d<float, progdiff::backend::Cpu> conv(
      {.in_channels = 2, .out_channels = 3, .kernel = 1, .stride = 1, .padding = 0, .bias = true});
  conv.weight().value = Tensor::from_host({3, 2, 1, 1}, std::vector<float>{1, 0, 0, 1, 2, -1});
  conv.bias().value = Tensor::from_host({3}, std::vector<float>{0.5f, -1, 0});

  const Tensor x = Tensor::from_host({1, 2, 2, 2}, std::vector<float>{1, 2, 3, 4, 10, 20, 30, 40});
  const Tensor y = conv.forward(x);
  if (!(y.shape() == progdiff::Shape{1, 3, 2, 2})) {
    std::printf("output shape %s, expected [1, 3, 2, 2]\n", y.shape().str().c_str());
    return 1;
  }
  // y_o = sum_i w[o, i] x_i + b_o
  expect_values("y", y, {1.5f, 2.5f, 3.5f, 4.5f, 9, 19, 29, 39, -8, -16, -24, -32});

  const Tensor dx = conv.backward(Tensor::full({1, 3, 2, 2}, 1.0f));
  expect_values("dx", dx, {3, 3, 3, 3, 0, 0, 0, 0});                          // sum_o w[o, i]
  expect_values("dweight", conv.weight().grad, {10, 100, 10, 100, 10, 100});  // sum_p x_i[p]
  expect_values("dbias", conv.bias().grad, {4, 4, 4});                        // pixel count

  if (conv.flops(x.shape()) != 2 * 3 * 2 * 4) {
    std::printf("flops %lld, expected 48\n", static_cast<long long>(conv.flops(x.shape())));
    ++mismatches;
  }
  if (mismatches) return 1;
  std::printf("progdiff consumer: 1x1 convolution forward and backward match the closed form\n");
  return 0;
}
