// A U-Net with levels: accepted.
#include "progdiff/unet/unet.hpp"
int main() { return progdiff::unet::Spec<progdiff::unet::Levels<1, 2>>::valid ? 0 : 1; }
