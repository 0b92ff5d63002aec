#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "progdiff/core/error.hpp"

namespace progdiff {

/// Dimensions of a tensor, outermost first (NCHW for images). Rank at most 6.
class Shape {
 public:
  static constexpr int kMaxRank = 6;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) {
    require<ShapeError>(dims.size() <= kMaxRank,
                        "Shape: rank " + std::to_string(dims.size()) + " exceeds the maximum of 6");
    for (auto d : dims) push_back(d);
  }
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<std::int64_t>(*first));
  }

  void push_back(std::int64_t d) {
    require<ShapeError>(rank_ < kMaxRank, "Shape: rank exceeds the maximum of 6");
    require<ShapeError>(d >= 0, "Shape: negative dimension " + std::to_string(d));
    dims_[rank_++] = d;
  }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  std::int64_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + rank_; }

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    return s + "]";
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

/// Throws a ShapeError naming `where` and both shapes unless they are equal.
inline void expect_shape(const Shape& got, const Shape& want, const std::string& where) {
  if (!(got == want)) throw ShapeError(where + ": got shape " + got.str() + ", expected " + want.str());
}

/// Throws unless `s` has rank 4 (an NCHW image batch).
inline void expect_nchw(const Shape& s, const std::string& where) {
  if (s.rank() != 4) throw ShapeError(where + ": expected an NCHW tensor of rank 4, got shape " + s.str());
}

}  // namespace progdiff
