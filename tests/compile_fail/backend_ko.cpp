// expect: the back-end type lacks gemm or gemm_strided_batched
// A back end with memory but no kernels is refused where a tensor is instantiated.
#include <cstdlib>

#include "progdiff/core/tensor.hpp"

struct MemoryOnly {
  static constexpr const char* name() { return "memory-only"; }
  static constexpr bool host_accessible = true;
  template <class T>
  static T* allocate(std::size_t n) {
    return static_cast<T*>(std::malloc(n * sizeof(T)));
  }
  template <class T>
  static void deallocate(T* p, std::size_t) {
    std::free(p);
  }
  template <class T>
  static void copy_from_host(T*, const T*, std::size_t) {}
  template <class T>
  static void copy_to_host(T*, const T*, std::size_t) {}
  template <class T>
  static void copy(T*, const T*, std::size_t) {}
  template <class T>
  static void fill(T*, std::size_t, T) {}
  template <class T>
  static void copy_2d(std::int64_t, std::int64_t, const T*, std::int64_t, T*, std::int64_t) {}
  template <class T>
  static void add_2d(std::int64_t, std::int64_t, const T*, std::int64_t, T*, std::int64_t) {}
  static void synchronize() {}
};

int main() {
  progdiff::Tensor<float, MemoryOnly> t(progdiff::Shape{2, 2});
  return t.numel() == 4 ? 0 : 1;
}
