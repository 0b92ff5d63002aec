// expect: each kind of option may be given at most once
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::UNet<u::Levels<1, 2>, u::ResBlocks<2>, u::ResBlocks<3>>) > 0 ? 0 : 1; }
