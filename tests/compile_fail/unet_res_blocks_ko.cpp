// expect: ResBlocks<N> needs N >= 1
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::ResBlocks<0>>::valid ? 0 : 1; }
