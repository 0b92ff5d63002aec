#pragma once
// The Fashion Frechet Distance: FID's formula (Heusel et al. 2017, eq. 6) evaluated in the feature
// space of a FashionClassifier (its global-average-pooled penultimate layer) instead of Inception-v3,
// so that it measures what a classifier trained on Fashion-MNIST distinguishes. Like FID, its value
// depends on the number of samples (the covariance estimates are biased for small sets): compare
// only distances computed from equal sample counts, and report the counts beside them.
#include <algorithm>
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"
#include "progdiff/core/inference_mode.hpp"
#include "progdiff/core/precompiled.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "progdiff/metrics/classifier.hpp"
#include "progdiff/metrics/classifier_training.hpp"
#include "progdiff/metrics/feature_statistics.hpp"
#include "progdiff/metrics/frechet.hpp"

namespace progdiff::metrics {

/// Feature statistics of the images [N, C, H, W] under `model`, computed batch by batch.
template <class T, class B>
FeatureStatistics classifier_feature_statistics(FashionClassifier<T, B>& model, const Tensor<T, B>& images,
                                                std::int64_t batch_size = 500) {
  expect_nchw(images.shape(), "classifier_feature_statistics");
  require(batch_size > 0, "classifier_feature_statistics: batch_size must be positive");
  const InferenceMode inference;
  FeatureStatistics stats(model.feature_dim());
  for (std::int64_t begin = 0; begin < images.dim(0); begin += batch_size)
    stats.add(model.features(images.slice(begin, std::min(images.dim(0), begin + batch_size))));
  return stats;
}

/// Feature statistics of images [begin, end) of `dataset` (end < 0: to the last image).
template <class T, class B>
FeatureStatistics classifier_feature_statistics(FashionClassifier<T, B>& model, const data::ImageDataset& dataset,
                                                std::int64_t begin = 0, std::int64_t end = -1,
                                                std::int64_t batch_size = 500) {
  if (end < 0) end = dataset.count;
  require<ShapeError>(0 <= begin && begin <= end && end <= dataset.count,
                      "classifier_feature_statistics: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                          ") outside a dataset of " + std::to_string(dataset.count));
  require(batch_size > 0, "classifier_feature_statistics: batch_size must be positive");
  const InferenceMode inference;
  FeatureStatistics stats(model.feature_dim());
  for (std::int64_t b = begin; b < end; b += batch_size)
    stats.add(model.features(dataset_images<T, B>(dataset, b, std::min(end, b + batch_size))));
  return stats;
}

/// The Fashion Frechet Distance between the images of `real` and the `generated` images
/// [N, C, H, W]; each set needs at least two images.
template <class T, class B>
double fashion_frechet_distance(FashionClassifier<T, B>& model, const data::ImageDataset& real,
                                const Tensor<T, B>& generated, std::int64_t batch_size = 500) {
  return frechet_distance(classifier_feature_statistics(model, real, 0, -1, batch_size),
                          classifier_feature_statistics(model, generated, batch_size));
}

}  // namespace progdiff::metrics

#if PROGDIFF_PRECOMPILED
namespace progdiff::metrics {
extern template FeatureStatistics classifier_feature_statistics(FashionClassifier<float, backend::Cpu>&,
                                                                const Tensor<float, backend::Cpu>&, std::int64_t);
extern template FeatureStatistics classifier_feature_statistics(FashionClassifier<float, backend::Cpu>&,
                                                                const data::ImageDataset&, std::int64_t, std::int64_t,
                                                                std::int64_t);
extern template double fashion_frechet_distance(FashionClassifier<float, backend::Cpu>&, const data::ImageDataset&,
                                                const Tensor<float, backend::Cpu>&, std::int64_t);
}  // namespace progdiff::metrics
#endif
