#pragma once
// Structural pruning of U-Nets: channel dependency groups, importance policies, pruning to
// widths or to a FLOPs budget, and the U-Net's pruning search space (docs/pruning.md).
#include "progdiff/prune/channel_groups.hpp"
#include "progdiff/prune/group_parameters.hpp"
#include "progdiff/prune/importance.hpp"
#include "progdiff/prune/importance_diff_pruning.hpp"
#include "progdiff/prune/importance_magnitude.hpp"
#include "progdiff/prune/importance_random.hpp"
#include "progdiff/prune/importance_taylor.hpp"
#include "progdiff/prune/prune_to_flops.hpp"
#include "progdiff/prune/prune_unet.hpp"
#include "progdiff/prune/pruned_model.hpp"
#include "progdiff/prune/unet_channel_groups.hpp"
#include "progdiff/prune/unet_search_space.hpp"
