// Attention at 16 on 32x32 images: level 1 works at 16x16, accepted.
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2, 2>, u::AttentionAt<16>, u::ImageSize<32>>::valid ? 0 : 1; }
