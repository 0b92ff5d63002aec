// 8 groups divide the default widths 24 and 48: accepted.
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::BaseChannels<24>, u::GroupNormGroups<8>>::valid ? 0 : 1; }
