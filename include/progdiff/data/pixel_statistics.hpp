#pragma once
// The spread of a dataset's pixels as a model sees them (after scaling and padding): EDM's
// sigma_data is the standard deviation of the training data, and its preconditioning
// (model/edm_preconditioning.hpp) keeps the network's inputs and targets at unit variance only
// when sigma_data matches it. Karras et al. use 0.5, about CIFAR-10's spread in [-1, 1];
// Fashion-MNIST, mostly black background, spreads wider.
//
//   const double sd = data::pixel_standard_deviation(train).standard_deviation;
//   model::EdmPreconditioned<M> model(net, grid, model::EdmPreconditioning{sd});
#include <cmath>
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/data/image_dataset.hpp"

namespace progdiff::data {

/// The mean, the (population) standard deviation and the root mean square over every pixel of
/// every image. The root mean square is the spread about zero, which is what EDM's derivation
/// assumes of its data (it takes the data's mean as zero): sqrt(mean^2 + standard_deviation^2).
struct PixelStatistics {
  double mean = 0.0;
  double standard_deviation = 0.0;
  std::int64_t pixels = 0;
  double root_mean_square = 0.0;
};

/// Over all channels and images of `d`, in double precision (two passes, so a large mean does not
/// cancel the spread). ConfigError for an empty dataset.
inline PixelStatistics pixel_standard_deviation(const ImageDataset& d) {
  d.validate("pixel_standard_deviation");
  require(!d.pixels.empty(), "pixel_standard_deviation: the dataset holds no images");
  double sum = 0.0;
  for (float v : d.pixels) sum += static_cast<double>(v);
  const double n = static_cast<double>(d.pixels.size());
  const double mean = sum / n;
  double squares = 0.0, raw_squares = 0.0;
  for (float v : d.pixels) {
    const double c = static_cast<double>(v) - mean;
    squares += c * c;
    raw_squares += static_cast<double>(v) * static_cast<double>(v);
  }
  return {mean, std::sqrt(squares / n), static_cast<std::int64_t>(d.pixels.size()), std::sqrt(raw_squares / n)};
}

}  // namespace progdiff::data
