// The checkpoint sampler built by nvcc: main.cpp, with --backend cuda (models.hpp includes the
// CUDA back end when nvcc compiles it).
#include "main.cpp"
