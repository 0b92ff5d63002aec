#pragma once
// A convolution layer's Winograd-transformed weights (U = G g G^T for every output and input
// channel pair, in the layout the kernel reads, detail/winograd_avx512.hpp or, on AVX2 targets,
// detail/winograd_avx2.hpp), kept from one
// forward call to the next. Sampling runs the same network tens to hundreds of times with the
// same weights, and the transform is a pass of scattered stores over 16/9 of the weights per
// call: reused, it costs a comparison instead.
//
// When U may be reused: only when the weights handed to this call are bit for bit the weights
// U was built from. The cache keeps its own copy of those weights and compares it with the
// current ones on every call (a sequential read of both, far cheaper than the transform). No
// version counter or scope can give that guarantee here: Tensor::data() hands out a mutable
// pointer from a const tensor, tensors share storage with their copies and views, and weights
// change through optimizer steps, checkpoint loading, EMA copies, visit_parameters and
// borrowed memory the library does not own, none of which would have to announce it. Equal
// bits give an equal U, so a reused U is the one the call would have computed, and the output
// is the same bit for bit; different bits (even -0.0 for 0.0) rebuild it.
//
// Threads: one forward at a time holds the cache (an atomic flag, taken without waiting); a
// concurrent forward of the same layer on another thread finds it taken and transforms into
// its own scratch, as without a cache. Inside a forward the kernel's OpenMP threads write and
// read U between the region's barriers, and the flag's release and acquire order those writes
// before the next holder's reads. Writing the weights while a forward reads them stays a data
// race, as it is without a cache: the comparison sees the weights as they are when it runs.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "progdiff/backend/conv_geometry.hpp"

namespace progdiff::backend::cpu {

class WinogradWeightCache {
 public:
  /// One forward call's hold on the cache, from lease() to the end of the call. Empty (false)
  /// where another thread held the cache: the call then does without it.
  class Lease {
   public:
    Lease() = default;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (cache_) cache_->busy_.clear(std::memory_order_release);
    }
    explicit operator bool() const { return cache_ != nullptr; }

    /// The weights U is (or is to be) the transform of: the cache's copy, bit-equal to those
    /// handed to lease(). The transform reads these rather than the caller's, so U and the
    /// copy it is checked against can never disagree.
    const float* weights() const { return cache_->source_.data(); }
    /// U, in the kernel's layout: the transform of weights() where current(), to be written
    /// by the caller (and then commit()ted) otherwise.
    float* transformed() const { return cache_->transformed_.data(); }
    bool current() const { return current_; }
    /// The caller has written U from weights(): later calls with the same weights reuse it. A
    /// call that fails before this leaves the cache empty.
    void commit() {
      cache_->valid_ = true;
      ++cache_->transforms_;
    }

   private:
    friend class WinogradWeightCache;
    Lease(WinogradWeightCache* cache, bool current) : cache_(cache), current_(current) {}
    WinogradWeightCache* cache_ = nullptr;
    bool current_ = false;
  };

  WinogradWeightCache() = default;
  // A copy of a layer starts with an empty cache: the copy shares or clones the weights, and a
  // cache built from them costs one transform, while a copied one would double the memory of
  // every copied layer. Moves do the same (the atomic flag cannot move).
  WinogradWeightCache(const WinogradWeightCache&) noexcept {}
  WinogradWeightCache& operator=(const WinogradWeightCache&) noexcept {
    release();
    return *this;
  }

  /// The cache for a forward of geometry g with weights [c_out, c_in, kh, kw] at `weights`,
  /// whose U takes `transformed_floats` floats: current() where the cache holds the transform of
  /// exactly these weights for this shape; otherwise it now holds a copy of them and room for U.
  Lease lease(const ConvGeometry& g, const float* weights, std::size_t transformed_floats) {
    if (busy_.test_and_set(std::memory_order_acquire)) return Lease{};
    const std::size_t floats = static_cast<std::size_t>(g.c_out * g.c_in * g.kh * g.kw);
    const bool current = valid_ && c_out_ == g.c_out && c_in_ == g.c_in && kh_ == g.kh && kw_ == g.kw &&
                         source_.size() == floats && transformed_.size() == transformed_floats &&
                         std::memcmp(source_.data(), weights, floats * sizeof(float)) == 0;
    if (!current) {
      valid_ = false;
      c_out_ = g.c_out;
      c_in_ = g.c_in;
      kh_ = g.kh;
      kw_ = g.kw;
      source_.assign(weights, weights + floats);
      transformed_.resize(transformed_floats);
    }
    return Lease{this, current};
  }

  /// Frees the memory (outside inference the layers drop their caches: a training step changes
  /// the weights every time). Skipped while another thread's forward holds the cache.
  void release() {
    if (busy_.test_and_set(std::memory_order_acquire)) return;
    valid_ = false;
    std::vector<float>().swap(source_);
    std::vector<float>().swap(transformed_);
    busy_.clear(std::memory_order_release);
  }

  /// How many times weights were transformed into this cache (tests and diagnostics: a count
  /// that stays put over calls is U reused, one that grows is U rebuilt).
  std::int64_t transforms() const { return transforms_; }
  /// Bytes held: the copy of the weights and U.
  std::size_t bytes() const { return (source_.capacity() + transformed_.capacity()) * sizeof(float); }

 private:
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  bool valid_ = false;
  std::int64_t c_out_ = 0, c_in_ = 0, kh_ = 0, kw_ = 0;  // the shape U was laid out for
  std::vector<float> source_, transformed_;
  std::int64_t transforms_ = 0;
};

}  // namespace progdiff::backend::cpu
