#pragma once
// Tests that need Fashion-MNIST (Debian: dataset-fashion-mnist, which tools/test installs) are
// decorated with `* fashion_mnist_required()`: without the data doctest lists them as skipped,
// so a missing data set shows in the summary instead of passing unnoticed.
#include <doctest/doctest.h>

#include <filesystem>

#include "progdiff/data/fashion_mnist.hpp"

namespace test_data {

inline bool fashion_mnist_installed() {
  return std::filesystem::exists(std::filesystem::path(progdiff::data::kFashionMnistDirectory) /
                                 "train-images-idx3-ubyte.gz");
}

/// doctest decorator: skip the test case when Fashion-MNIST is not installed.
inline doctest::skip fashion_mnist_required() { return doctest::skip(!fashion_mnist_installed()); }

}  // namespace test_data
