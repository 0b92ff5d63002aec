// The same model wrapped in EDM's preconditioning is what EdmObjective trains.
#include "progdiff/model/edm_preconditioning.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/train/edm_objective.hpp"
#include "progdiff/unet/unet.hpp"

using Net = progdiff::unet::UNet<progdiff::unet::Levels<1, 2>, progdiff::unet::AttentionAt<>,
                                 progdiff::unet::ImageSize<8>, progdiff::unet::ImageChannels<1>,
                                 progdiff::unet::BaseChannels<8>, progdiff::unet::GroupNormGroups<4>>;

static_assert(progdiff::train::check_objective<
              progdiff::train::EdmObjective, progdiff::model::EdmPreconditioned<progdiff::model::Progressive<Net>>>());
int main() { return 0; }
