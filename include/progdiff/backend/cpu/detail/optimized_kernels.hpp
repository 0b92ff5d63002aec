#pragma once
// PROGDIFF_KERNELS_BEGIN / PROGDIFF_KERNELS_END around the definitions of the CPU back end's
// kernels and loops: in a translation unit compiled without optimization (a debug or sanitized
// build at -O0), GCC still compiles them at -O2. An inline kernel is emitted by every unit that
// uses it and the linker keeps one copy, possibly an -O0 one, which keeps its vector
// accumulators in memory and runs tens of times slower. The same holds under AddressSanitizer at
// -O1, where GCC left the micro-kernel's accumulators in memory too, and wherever the build
// defines PROGDIFF_OPTIMIZE_KERNELS (the release preset's test programs, compiled at -O1 to save
// build time). PROGDIFF_OPTIMIZE_KERNELS=3 compiles them at -O3 instead: the release preset's
// applications are -O1 units too, and the linker may keep their copy of a kernel for the whole
// program, so theirs must be as fast as the precompiled component's. Other optimized builds, and
// nvcc's passes over .cu units, are left as they are.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && \
    (!defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__) || defined(PROGDIFF_OPTIMIZE_KERNELS))
#if defined(PROGDIFF_OPTIMIZE_KERNELS) && PROGDIFF_OPTIMIZE_KERNELS == 3
#define PROGDIFF_KERNELS_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"O3\")")
#else
#define PROGDIFF_KERNELS_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"O2\")")
#endif
#define PROGDIFF_KERNELS_END _Pragma("GCC pop_options")
#else
#define PROGDIFF_KERNELS_BEGIN
#define PROGDIFF_KERNELS_END
#endif
