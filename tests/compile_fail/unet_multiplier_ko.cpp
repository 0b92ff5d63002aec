// expect: every channel multiplier in Levels<...> must be positive
#include "progdiff/unet/unet.hpp"
int main() { return progdiff::unet::Spec<progdiff::unet::Levels<1, 0, 2>>::valid ? 0 : 1; }
