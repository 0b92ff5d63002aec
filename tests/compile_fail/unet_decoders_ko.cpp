// expect: MultiDecoderUNet needs a Decoders<K> option
#include "progdiff/unet/multi_decoder_unet.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::MultiDecoderUNet<u::Levels<1, 2>>) > 0 ? 0 : 1; }
