#pragma once
// The Backend concept: where tensors live and how their kernels run. Layer code calls only
// these static functions, so a layer written once runs on every back end (CPU, CUDA, or a
// user's own type that satisfies the concept).
#include <concepts>
#include <cstddef>
#include <cstdint>

namespace progdiff {

/// Row-major GEMM operand transposition.
enum class Trans : bool { No = false, Yes = true };

// clang-format off
template <class B>
concept Backend = requires(float* p, const float* cp, std::size_t n, std::int64_t i, float s) {
  { B::name() } -> std::convertible_to<const char*>;
  // memory: allocate, release, copy between host and back end
  { B::template allocate<float>(n) } -> std::same_as<float*>;
  B::template deallocate<float>(p, n);
  B::template copy_from_host<float>(p, cp, n);
  B::template copy_to_host<float>(p, cp, n);
  B::template copy<float>(p, cp, n);
  B::template fill<float>(p, n, s);
  B::synchronize();
  // C = alpha op(A) op(B) + beta C, row-major, optionally batched with strides
  B::template gemm<float>(Trans::No, Trans::No, i, i, i, s, cp, i, cp, i, s, p, i);
  B::template gemm_strided_batched<float>(Trans::No, Trans::No, i, i, i, s, cp, i, i, cp, i, i, s, p, i, i, i);
  // element-wise and reductions
  B::template axpy<float>(n, s, cp, p);
  B::template silu_forward<float>(n, cp, p);
  B::template silu_backward<float>(n, cp, cp, p);
  { B::template sum<float>(n, cp) } -> std::convertible_to<double>;
};
// clang-format on

/// Readable failure at every composition point that takes a back end.
template <class B>
constexpr bool check_backend() {
  static_assert(Backend<B>,
                "progdiff: the back-end type does not satisfy progdiff::Backend; it needs static "
                "allocate/deallocate/copy/fill, gemm, gemm_strided_batched and the element-wise "
                "kernels listed in progdiff/backend/backend.hpp");
  return true;
}

}  // namespace progdiff
