// A shared-encoder model whose constructor takes the number of decoders: accepted.
#include "progdiff/unet/multi_decoder_unet.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::MultiDecoderUNet<u::Levels<1, 2>, u::Decoders<u::kRunTimeCount>>) > 0 ? 0 : 1; }
