// expect: an EDM base (train::EdmObjective) is fine-tuned on its sigma grid's schedule
// TDC's pipeline with EDM's objective on a discrete VP schedule: EdmObjective trains the
// preconditioned denoiser on the sigma grid (s_t = 1), so the pipeline refuses the pairing and
// names schedule::EDM.
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/unet/unet.hpp"

using Net = progdiff::unet::UNet<progdiff::unet::Levels<1, 2>, progdiff::unet::AttentionAt<>,
                                 progdiff::unet::ImageSize<8>, progdiff::unet::ImageChannels<1>,
                                 progdiff::unet::BaseChannels<8>, progdiff::unet::GroupNormGroups<4>>;

template class progdiff::tdc::TdcPipeline<Net, progdiff::schedule::Linear<40>, progdiff::train::EdmObjective>;
int main() { return 0; }
