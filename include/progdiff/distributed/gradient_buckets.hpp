#pragma once
// GradientBuckets: sums the parameter gradients of all ranks, a bucket at a time. Gradients are
// packed in visiting order into one buffer of at most `bucket_elements` values (a parameter may
// span two buckets), each full bucket is all-reduced in one call and copied back. Few large
// messages instead of one per parameter: the per-call latency of the exchange is paid
// (parameters / bucket) times instead of once per tensor; the buffer is kept between steps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/distributed/communicator.hpp"

namespace progdiff::distributed {

inline constexpr std::int64_t kDefaultBucketBytes = std::int64_t{4} << 20;  // 4 MiB, as a start

template <class T, class B>
class GradientBuckets {
 public:
  explicit GradientBuckets(std::int64_t bucket_bytes = kDefaultBucketBytes)
      : capacity_(static_cast<std::size_t>(bucket_bytes) / sizeof(T)) {
    require(bucket_bytes >= static_cast<std::int64_t>(sizeof(T)),
            "GradientBuckets: a bucket must hold at least one value, got " + std::to_string(bucket_bytes) + " bytes");
  }

  /// Sums the gradients of every parameter `model.visit_parameters` visits over the ranks of
  /// `comm` (each rank then holds the same sum). A collective call.
  template <Communicator C, class Model>
  void all_reduce(C& comm, Model& model) {
    if constexpr (C::single_process) return;
    if (!allocated_) {
      bucket_ = Tensor<T, B>(Shape{static_cast<std::int64_t>(capacity_)});
      allocated_ = true;
    }
    model.visit_parameters(
        [&](const std::string&, auto& p) {
          T* grad = p.grad.data();
          const std::size_t n = p.grad.size();
          for (std::size_t done = 0; done < n;) {
            const std::size_t take = std::min(n - done, capacity_ - filled_);
            B::template copy<T>(bucket_.data() + filled_, grad + done, take);
            pieces_.push_back({grad + done, filled_, take});
            filled_ += take;
            done += take;
            if (filled_ == capacity_) flush(comm);
          }
        },
        std::string());
    flush(comm);
  }

  std::int64_t calls() const { return calls_; }  // all-reduce calls made so far

 private:
  struct Piece {
    T* grad;           // where the values came from
    std::size_t at;    // their place in the bucket
    std::size_t size;  // how many
  };

  template <class C>
  void flush(C& comm) {
    if (filled_ == 0) return;
    comm.all_reduce_sum(std::span<T>(bucket_.data(), filled_));
    ++calls_;
    for (const Piece& piece : pieces_) B::template copy<T>(piece.grad, bucket_.data() + piece.at, piece.size);
    pieces_.clear();
    filled_ = 0;
  }

  std::size_t capacity_;
  Tensor<T, B> bucket_;
  bool allocated_ = false;
  std::size_t filled_ = 0;
  std::vector<Piece> pieces_;
  std::int64_t calls_ = 0;
};

}  // namespace progdiff::distributed
