// One residual block per level: accepted.
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::ResBlocks<1>>::valid ? 0 : 1; }
