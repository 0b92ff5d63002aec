// expect: GroupNormGroups<G> must divide every default width
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::BaseChannels<24>, u::GroupNormGroups<32>>::valid ? 0 : 1; }
