#pragma once
// What the tests against PyTorch fixtures share: a fixture's tensor on the CPU, the error scaled
// by the reference's magnitude, and diffusers' names of the prediction types.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/schedule/prediction_type.hpp"

namespace fixture_test {

/// The tensor `name` of a fixture file, converted to T, on the CPU back end.
template <class T>
progdiff::Tensor<T, progdiff::backend::Cpu> fixture_tensor(const progdiff::io::SafetensorsFile& f,
                                                           const std::string& name) {
  const auto& r = f.at(name);
  return progdiff::Tensor<T, progdiff::backend::Cpu>::from_host(progdiff::Shape(r.shape.begin(), r.shape.end()),
                                                                f.values<T>(name));
}

/// max |a - b| / max(1, max |b|); NaN counts as infinite.
template <class A>
double scaled_error(const std::vector<A>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double scale = 1.0, worst = 0.0;
  for (double v : b) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = std::abs(static_cast<double>(a[i]) - b[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst / scale;
}

/// The prediction types by the names the fixtures (and diffusers) use.
inline const std::map<std::string, progdiff::schedule::PredictionType> kPredictions = {
    {"epsilon", progdiff::schedule::PredictionType::Epsilon},
    {"sample", progdiff::schedule::PredictionType::Sample},
    {"v_prediction", progdiff::schedule::PredictionType::VPrediction}};

}  // namespace fixture_test
