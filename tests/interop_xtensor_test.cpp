#include <doctest/doctest.h>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/interop/xtensor.hpp"
#include "progdiff/nn/conv2d.hpp"

namespace progdiff_tests_interop_xtensor {

using progdiff::Shape;
using Tensor = progdiff::Tensor<float, progdiff::backend::Cpu>;
namespace interop = progdiff::interop;

TEST_CASE("xtensor expressions become tensors in row-major order") {
  // arange(24).reshape(2, 3, 4): element [i, j, k] = 12 i + 4 j + k
  const auto values = xt::reshape_view(xt::arange<float>(24.0f), {2, 3, 4});
  const Tensor t = interop::from_xtensor<float, progdiff::backend::Cpu>(values);
  CHECK(t.shape() == Shape{2, 3, 4});
  const auto host = t.to_host();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) CHECK(host[static_cast<std::size_t>(12 * i + 4 * j + k)] == 12 * i + 4 * j + k);
  // A strided (transposed) expression is evaluated, not reinterpreted: t2[k, j, i] = 12 i + 4 j + k.
  const Tensor t2 = interop::from_xtensor<float, progdiff::backend::Cpu>(xt::transpose(values));
  CHECK(t2.shape() == Shape{4, 3, 2});
  CHECK(t2.to_host()[static_cast<std::size_t>(3 * 3 * 2 + 1 * 2 + 1)] == 12 * 1 + 4 * 1 + 3);
}

TEST_CASE("as_xtensor views a CPU tensor without copying") {
  Tensor t = Tensor::from_host({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  auto view = interop::as_xtensor(t);
  CHECK(view.dimension() == 2);
  CHECK(view(1, 2) == 6.0f);
  CHECK(xt::sum(view)() == doctest::Approx(21.0));
  view *= 2.0f;  // writes land in the tensor's storage
  CHECK(t.to_host() == std::vector<float>{2, 4, 6, 8, 10, 12});
}

TEST_CASE("a layer runs on data prepared with xtensor, and its output reads back as an xarray") {
  // 1x1 convolution with weight [[2], [-1]] and bias [0.5, 0]: y0 = 2 x + 0.5, y1 = -x.
  progdiff::nn::Conv2d<float, progdiff::backend::Cpu> conv({1, 2, 1, 1, 0, true});
  conv.weight().value = Tensor::from_host({2, 1, 1, 1}, std::vector<float>{2, -1});
  conv.bias().value = Tensor::from_host({2}, std::vector<float>{0.5f, 0});
  const auto x = xt::reshape_view(xt::linspace<float>(-1.0f, 1.0f, 6), {1, 1, 2, 3});
  const auto y = interop::to_xarray(conv.forward(interop::from_xtensor<float, progdiff::backend::Cpu>(x)));
  REQUIRE(y.shape() == std::vector<std::size_t>{1, 2, 2, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      const float xv = -1.0f + 0.4f * static_cast<float>(3 * i + j);
      CHECK(y(0, 0, i, j) == doctest::Approx(2 * xv + 0.5f).epsilon(1e-6));
      CHECK(y(0, 1, i, j) == doctest::Approx(-xv).epsilon(1e-6));
    }
}

TEST_CASE("from_xtensor refuses a rank the Shape cannot hold") {
  const xt::xarray<float> deep = xt::zeros<float>({1, 1, 1, 1, 1, 1, 2});
  CHECK_THROWS_AS((interop::from_xtensor<float, progdiff::backend::Cpu>(deep)), progdiff::ShapeError);
}

}  // namespace progdiff_tests_interop_xtensor
