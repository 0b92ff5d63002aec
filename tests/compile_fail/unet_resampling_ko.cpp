// expect: with a single level there are none
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1>, u::ResBlockResampling>::valid ? 0 : 1; }
