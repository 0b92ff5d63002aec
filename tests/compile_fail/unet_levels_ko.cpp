// expect: Levels<> is empty
#include "progdiff/unet/unet.hpp"
int main() { return progdiff::unet::Spec<progdiff::unet::Levels<>>::valid ? 0 : 1; }
