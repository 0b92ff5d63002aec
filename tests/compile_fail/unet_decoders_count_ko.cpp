// expect: Decoders<K> needs K >= 1, or unet::kRunTimeCount
#include "progdiff/unet/multi_decoder_unet.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::MultiDecoderUNet<u::Levels<1, 2>, u::Decoders<0>>) > 0 ? 0 : 1; }
