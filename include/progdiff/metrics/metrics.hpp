#pragma once
// Sample-quality metrics: feature statistics and the Frechet distance, the Fashion-MNIST classifier
// whose features define the Fashion Frechet Distance, and the denoising loss per timestep group.
#include "progdiff/metrics/classifier.hpp"
#include "progdiff/metrics/classifier_training.hpp"
#include "progdiff/metrics/cross_entropy.hpp"
#include "progdiff/metrics/fashion_frechet.hpp"
#include "progdiff/metrics/feature_statistics.hpp"
#include "progdiff/metrics/frechet.hpp"
#include "progdiff/metrics/global_average_pool.hpp"
#include "progdiff/metrics/group_loss.hpp"
#include "progdiff/metrics/nll.hpp"
