// A shared-encoder model with three decoders: accepted.
#include "progdiff/unet/multi_decoder_unet.hpp"
namespace u = progdiff::unet;
int main() { return sizeof(u::MultiDecoderUNet<u::Levels<1, 2>, u::Decoders<3>>) > 0 ? 0 : 1; }
