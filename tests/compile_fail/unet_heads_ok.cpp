// Four heads on widths 64 and 128: accepted.
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::BaseChannels<64>, u::AttentionHeads<4>>::valid ? 0 : 1; }
