// expect: AttentionHeads<H> must divide every default width
#include "progdiff/unet/unet.hpp"
namespace u = progdiff::unet;
int main() { return u::Spec<u::Levels<1, 2>, u::BaseChannels<64>, u::AttentionHeads<3>>::valid ? 0 : 1; }
