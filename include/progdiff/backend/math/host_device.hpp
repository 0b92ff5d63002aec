#pragma once
// The one macro for toolchain facts: kernel arithmetic shared by the CPU and CUDA
// back ends is written once and compiled for both.
#if defined(__CUDACC__)
#define PROGDIFF_HOST_DEVICE __host__ __device__
#else
#define PROGDIFF_HOST_DEVICE
#endif
#define PROGDIFF_INLINE PROGDIFF_HOST_DEVICE inline
