#pragma once
// The optional precompiled component (CMake target progdiff::precompiled) holds the common
// instantiations, float on the CPU back end: the layers, the metric's classifier, the optimizer
// and EMA, and for the small U-Net presets (unet/small_presets.hpp) the nets, their progressive
// models, stage-1 and stage-2 training, DDIM sampling and checkpoints. A program that links it
// gets PROGDIFF_PRECOMPILED=1, under which the headers declare those instantiations `extern
// template` and the compiler leaves them to the component; without it (header-only use)
// everything is instantiated where it is used, as before.
#ifndef PROGDIFF_PRECOMPILED
#define PROGDIFF_PRECOMPILED 0
#endif
