// The metric's classifier and the Frechet distance, float on the CPU back end, compiled once
// for every program that links progdiff::precompiled (see progdiff/core/precompiled.hpp).
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/metrics/classifier.hpp"
#include "progdiff/metrics/classifier_training.hpp"
#include "progdiff/metrics/fashion_frechet.hpp"
#include "progdiff/metrics/frechet.hpp"
#include "progdiff/metrics/global_average_pool.hpp"

// The symbol metrics/feature_statistics.hpp makes every linking unit refer to.
extern "C" const int PROGDIFF_EIGEN_ALIGN_SYMBOL(EIGEN_MAX_ALIGN_BYTES) = EIGEN_MAX_ALIGN_BYTES;

namespace progdiff::metrics {
using backend::Cpu;
template class FashionClassifier<float, Cpu>;
template class GlobalAveragePool<float, Cpu>;
template Tensor<float, Cpu> dataset_images<float, Cpu>(const data::ImageDataset&, std::int64_t, std::int64_t);
template double classifier_accuracy(FashionClassifier<float, Cpu>&, const data::ImageDataset&, std::int64_t);
template ClassifierTrainingReport train_classifier(FashionClassifier<float, Cpu>&, const data::ImageDataset&,
                                                   const data::ImageDataset*, const ClassifierTrainingConfig&,
                                                   const std::function<void(const ClassifierEpoch&)>&);
template void save_classifier(const std::filesystem::path&, FashionClassifier<float, Cpu>&, std::int64_t, std::int64_t,
                              std::uint64_t);
template double load_classifier(const std::filesystem::path&, FashionClassifier<float, Cpu>&);
template TrainedClassifier<float, Cpu> load_or_train_classifier<float, Cpu>(
    const std::filesystem::path&, const std::filesystem::path&, std::uint64_t,
    const std::function<void(const ClassifierEpoch&)>&);
template FeatureStatistics classifier_feature_statistics(FashionClassifier<float, Cpu>&, const Tensor<float, Cpu>&,
                                                         std::int64_t);
template FeatureStatistics classifier_feature_statistics(FashionClassifier<float, Cpu>&, const data::ImageDataset&,
                                                         std::int64_t, std::int64_t, std::int64_t);
template double trace_sqrt_product<>(const Eigen::MatrixXd&, const Eigen::MatrixXd&);
template double frechet_distance<>(const Eigen::VectorXd&, const Eigen::MatrixXd&, const Eigen::VectorXd&,
                                   const Eigen::MatrixXd&);
template double frechet_distance(const FeatureStatistics&, const FeatureStatistics&);
template double fashion_frechet_distance(FashionClassifier<float, Cpu>&, const data::ImageDataset&,
                                         const Tensor<float, Cpu>&, std::int64_t);
}  // namespace progdiff::metrics
