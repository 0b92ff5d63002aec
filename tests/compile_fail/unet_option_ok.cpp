// Options in any order: accepted, and the UNet type instantiates.
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::UNet<u::ResBlocks<2>, u::AttentionAt<16>, u::Levels<1, 2, 2>>) > 0 ? 0 : 1; }
