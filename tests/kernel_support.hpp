#pragma once
// Inputs for the kernel tests that compare a fast path with its plain-loop reference.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace progdiff::test {

/// n values uniform in [-1, 1), reproducible from `seed`.
inline std::vector<double> uniform(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

/// The same values in element type T (the reference keeps the doubles).
template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

}  // namespace progdiff::test
