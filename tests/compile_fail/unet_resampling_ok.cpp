// Resampling ResBlocks between two levels: accepted.
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::ResBlockResampling>::valid ? 0 : 1; }
