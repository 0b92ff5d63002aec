#pragma once
// The part of the main job's evaluation that needs the samples only, not the model that drew
// them: samples.safetensors, --compare-with, samples.png, the metric's classifier and the Frechet
// distance. Compiled once (evaluation.cpp) rather than in every variant's unit, which would
// otherwise each compile the safetensors and PNG writers, the classifier and Eigen's eigen-solver.
#include "options.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/data/image_dataset.hpp"
#include "report.hpp"

namespace job {

/// Saves `samples` (N x 1 x 32 x 32, as drawn) and their grid, compares them with --compare-with,
/// and measures the Frechet distance of the first --fid-samples of them to `test` (and of as many
/// training images, the floor a perfect model would reach) into `report`.
void evaluate_samples(const Options& o, const pd::Tensor<float, Cpu>& samples, const pd::data::ImageDataset& train,
                      const pd::data::ImageDataset& test, Report& report);

}  // namespace job
