#pragma once
// Helpers of the layer tests: fixture loading, closeness checks and central differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/nn/layer.hpp"

namespace layer_test {

using Cpu = progdiff::backend::Cpu;
template <class T>
using HostTensor = progdiff::Tensor<T, Cpu>;

inline progdiff::io::SafetensorsFile read_layer_fixture(const std::string& name) {
  return progdiff::io::read_safetensors(std::string(PROGDIFF_FIXTURES_DIR) + "/layers/" + name + ".safetensors");
}

inline std::int64_t meta_int(const progdiff::io::SafetensorsFile& f, const std::string& key) {
  return std::stoll(f.metadata.at(key));
}
inline double meta_double(const progdiff::io::SafetensorsFile& f, const std::string& key) {
  return std::stod(f.metadata.at(key));
}

/// The tensor `name` of a fixture, converted to T.
template <class T>
HostTensor<T> fixture_tensor(const progdiff::io::SafetensorsFile& f, const std::string& name) {
  const auto& record = f.at(name);
  return HostTensor<T>::from_host(progdiff::Shape(record.shape.begin(), record.shape.end()), f.values<T>(name));
}

/// Requires ||actual - expected||_inf <= tol * max(1, ||expected||_inf): every element within
/// tol of the tensor's scale. (Scaling by the tensor rather than by each element keeps the
/// test meaningful for gradients that cancel to nearly zero in exact arithmetic, such as the
/// key gradients of attention, whose float rounding is relative to the summed terms.)
template <class T>
void check_close(const HostTensor<T>& actual, const HostTensor<T>& expected, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(actual.shape() == expected.shape());
  const auto a = actual.to_host();
  const auto e = expected.to_host();
  double scale = 1.0;
  for (const T v : e) scale = std::max(scale, std::abs(static_cast<double>(v)));
  double worst = 0.0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double error = std::abs(static_cast<double>(a[i]) - static_cast<double>(e[i]));
    if (!(error <= worst)) {  // also catches NaN
      worst = std::isnan(error) ? INFINITY : error;
      worst_at = i;
    }
  }
  INFO("worst element " << worst_at << ": got " << (a.empty() ? 0.0 : double(a[worst_at])) << ", expected "
                        << (e.empty() ? 0.0 : double(e[worst_at])) << ", allowed error " << tol * scale);
  CHECK(worst <= tol * scale);
}

/// Sets every parameter of `layer` from the fixture (same dotted names) and zeroes its gradient.
template <class T, class L>
void load_parameters(L& layer, const progdiff::io::SafetensorsFile& f) {
  layer.visit_parameters(
      [&](const std::string& name, auto& p) {
        INFO("parameter " << name);
        REQUIRE(f.contains(name));
        const HostTensor<T> v = fixture_tensor<T>(f, name);
        REQUIRE(v.shape() == p.value.shape());
        p.value.copy_from(v);
        p.zero_grad();
      },
      std::string());
}

/// Compares every parameter gradient with the fixture's "grad.<name>", and requires the
/// layer to have visited every gradient the fixture holds.
template <class T, class L>
void check_parameter_grads(L& layer, const progdiff::io::SafetensorsFile& f, double tol) {
  std::size_t visited = 0;
  layer.visit_parameters(
      [&](const std::string& name, auto& p) {
        check_close<T>(p.grad, fixture_tensor<T>(f, "grad." + name), tol, "gradient of " + name);
        ++visited;
      },
      std::string());
  const auto expected =
      std::count_if(f.tensors.begin(), f.tensors.end(), [](const auto& kv) { return kv.first.rfind("grad.", 0) == 0; });
  CHECK(visited == static_cast<std::size_t>(expected));
}

/// A tensor of standard normals (times scale) from a Philox generator.
template <class T>
HostTensor<T> random_tensor(progdiff::Shape shape, progdiff::Generator& gen, double scale = 1.0) {
  std::vector<T> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = static_cast<T>(scale * gen.normal<double>());
  return HostTensor<T>::from_host(shape, v);
}

/// Fills every parameter of `layer` with normals (scale 0.5; GroupNorm gammas near 1 are
/// not needed for a gradient check) and zeroes the gradients.
template <class L>
void randomize_parameters(L& layer, progdiff::Generator& gen) {
  layer.visit_parameters(
      [&](const std::string&, auto& p) {
        using T = typename std::decay_t<decltype(p.value)>::value_type;
        p.value = random_tensor<T>(p.value.shape(), gen, 0.5);
        p.zero_grad();
      },
      std::string());
}

/// Compares `analytic` (the gradient of `loss` with respect to `value`) with central
/// differences: (loss(v + h e_i) - loss(v - h e_i)) / 2h for at most `max_checks` elements
/// spread over the tensor; |analytic - numeric| <= tol * max(1, |numeric|).
inline void check_gradient(HostTensor<double>& value, const HostTensor<double>& analytic,
                           const std::function<double()>& loss, const std::string& what, double h = 1e-5,
                           double tol = 1e-6, std::int64_t max_checks = 48) {
  INFO(what);
  REQUIRE(analytic.shape() == value.shape());
  const std::vector<double> g = analytic.to_host();
  const std::int64_t n = value.numel();
  const std::int64_t step = std::max<std::int64_t>(1, n / max_checks);
  double* v = value.data();  // the CPU back end's memory is host memory
  double worst = 0.0;
  std::int64_t worst_at = 0;
  double worst_numeric = 0.0;
  for (std::int64_t i = (n - 1) % step; i < n; i += step) {
    const double saved = v[i];
    v[i] = saved + h;
    const double up = loss();
    v[i] = saved - h;
    const double down = loss();
    v[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double ratio = std::abs(g[static_cast<std::size_t>(i)] - numeric) / (tol * std::max(1.0, std::abs(numeric)));
    if (!(ratio <= worst)) {
      worst = std::isnan(ratio) ? INFINITY : ratio;
      worst_at = i;
      worst_numeric = numeric;
    }
  }
  INFO("worst element " << worst_at << ": analytic " << g[static_cast<std::size_t>(worst_at)] << ", numeric "
                        << worst_numeric);
  CHECK(worst <= 1.0);
}

/// <w, y>: the random projection used as the scalar loss of the gradient checks.
inline double project(const HostTensor<double>& w, const HostTensor<double>& y) {
  REQUIRE(w.shape() == y.shape());
  return Cpu::dot(y.size(), w.data(), y.data());
}

/// Checks the gradient of every parameter of `layer`: `grads` holds copies of the analytic
/// gradients by name (taken right after backward), `loss` reruns the forward pass.
template <class L>
void check_parameter_gradients(L& layer, const std::vector<std::pair<std::string, HostTensor<double>>>& grads,
                               const std::function<double()>& loss) {
  std::size_t i = 0;
  layer.visit_parameters(
      [&](const std::string& name, auto& p) {
        REQUIRE(i < grads.size());
        CHECK(grads[i].first == name);
        check_gradient(p.value, grads[i].second, loss, "parameter " + name);
        ++i;
      },
      std::string());
  CHECK(i == grads.size());
}

/// Copies of every parameter gradient of `layer`, by name, in visiting order.
template <class L>
std::vector<std::pair<std::string, HostTensor<double>>> parameter_gradients(L& layer) {
  std::vector<std::pair<std::string, HostTensor<double>>> out;
  layer.visit_parameters([&](const std::string& name, auto& p) { out.emplace_back(name, p.grad.clone()); },
                         std::string());
  return out;
}

/// Runs `f` and requires it to throw E whose message contains every one of `parts`.
template <class E, class F>
void check_throws_naming(F&& f, const std::vector<std::string>& parts) {
  bool thrown = false;
  try {
    f();
  } catch (const E& e) {
    thrown = true;
    const std::string message = e.what();
    INFO("message: " << message);
    for (const auto& part : parts) CHECK(message.find(part) != std::string::npos);
  }
  CHECK(thrown);
}

}  // namespace layer_test
