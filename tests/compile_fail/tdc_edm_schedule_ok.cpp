// The same U-Net as an EDM base on its sigma grid's schedule is what TDC's pipeline prunes and
// fine-tunes: model::EdmPreconditioned<model::Progressive<Net>> with train::EdmObjective.
#include <type_traits>

#include "progdiff/schedule/continuous.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/unet/unet.hpp"

using Net = progdiff::unet::UNet<progdiff::unet::Levels<1, 2>, progdiff::unet::AttentionAt<>,
                                 progdiff::unet::ImageSize<8>, progdiff::unet::ImageChannels<1>,
                                 progdiff::unet::BaseChannels<8>, progdiff::unet::GroupNormGroups<4>>;

using Pipeline = progdiff::tdc::TdcPipeline<Net, progdiff::schedule::EDM, progdiff::train::EdmObjective>;
static_assert(
    std::is_same_v<Pipeline::GroupModel, progdiff::model::EdmPreconditioned<progdiff::model::Progressive<Net>>>);
template class progdiff::tdc::TdcPipeline<Net, progdiff::schedule::EDM, progdiff::train::EdmObjective>;
int main() { return 0; }
