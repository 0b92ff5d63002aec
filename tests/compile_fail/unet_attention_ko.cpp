// expect: AttentionAt<...> resolution is not the resolution of any level
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2, 2>, u::AttentionAt<12>, u::ImageSize<32>>::valid ? 0 : 1; }
