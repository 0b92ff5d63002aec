#pragma once
// Groupers: the Grouper concept, Partition, and the timestep groupers of both papers.
#include "progdiff/group/edm_partition.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/group/grouper.hpp"
#include "progdiff/group/log_snr_split.hpp"
#include "progdiff/group/optimal_denoiser.hpp"
#include "progdiff/group/optimal_denoiser_clustering.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/group/similarity_dp_split.hpp"
#include "progdiff/group/snr_spread_split.hpp"
#include "progdiff/group/uniform_split.hpp"
