// The same IDDPM base with IDDPM's hybrid objective is what TDC's pipeline prunes and fine-tunes.
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/train/hybrid_objective.hpp"
#include "progdiff/unet/unet.hpp"

using Net =
    progdiff::unet::UNet<progdiff::unet::Levels<1, 2>, progdiff::unet::AttentionAt<>, progdiff::unet::ImageSize<8>,
                         progdiff::unet::ImageChannels<1>, progdiff::unet::BaseChannels<8>,
                         progdiff::unet::GroupNormGroups<4>, progdiff::unet::LearnedVariance>;

static_assert(progdiff::train::check_objective<progdiff::train::HybridObjective, progdiff::model::Progressive<Net>>());
using Pipeline = progdiff::tdc::TdcPipeline<Net, progdiff::schedule::Cosine<40>, progdiff::train::HybridObjective>;
static_assert(sizeof(Pipeline) > 0);
int main() { return 0; }
