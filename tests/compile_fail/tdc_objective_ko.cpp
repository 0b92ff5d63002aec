// expect: this model predicts a variance (unet::LearnedVariance, 2C outputs); train it with train::HybridObjective
// TDC's pipeline on an IDDPM base (a learned variance) with the default objective, L_simple: its
// groups' fine-tuning would leave the variance head untrained, so the pipeline refuses the type.
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/unet/unet.hpp"

using Net =
    progdiff::unet::UNet<progdiff::unet::Levels<1, 2>, progdiff::unet::AttentionAt<>, progdiff::unet::ImageSize<8>,
                         progdiff::unet::ImageChannels<1>, progdiff::unet::BaseChannels<8>,
                         progdiff::unet::GroupNormGroups<4>, progdiff::unet::LearnedVariance>;

template class progdiff::tdc::TdcPipeline<Net, progdiff::schedule::Cosine<40>>;
int main() { return 0; }
