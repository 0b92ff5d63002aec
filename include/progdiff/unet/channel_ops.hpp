#pragma once
// Channel concatenation and sample gathering for NCHW tensors, written only with the back end's
// strided copies (B::copy_2d, B::add_2d, B::copy), so they run wherever the layers run.
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "progdiff/core/tensor.hpp"

namespace progdiff::unet {

/// torch.cat([a, b], dim=1): a [N, Ca, H, W], b [N, Cb, H, W] -> [N, Ca + Cb, H, W].
template <class T, class B>
Tensor<T, B> concat_channels(const Tensor<T, B>& a, const Tensor<T, B>& b) {
  expect_nchw(a.shape(), "concat_channels first operand");
  expect_nchw(b.shape(), "concat_channels second operand");
  if (a.dim(0) != b.dim(0) || a.dim(2) != b.dim(2) || a.dim(3) != b.dim(3))
    throw ShapeError("concat_channels: shapes " + a.shape().str() + " and " + b.shape().str() +
                     " differ outside the channel axis");
  const std::int64_t n = a.dim(0), hw = a.dim(2) * a.dim(3), ca = a.dim(1) * hw, cb = b.dim(1) * hw;
  Tensor<T, B> out(Shape{n, a.dim(1) + b.dim(1), a.dim(2), a.dim(3)});
  // Each sample is one row: a's block then b's block.
  B::template copy_2d<T>(n, ca, a.data(), ca, out.data(), ca + cb);
  B::template copy_2d<T>(n, cb, b.data(), cb, out.data() + ca, ca + cb);
  return out;
}

/// The inverse of concat_channels: y [N, C, H, W] -> (y[:, :first], y[:, first:]).
template <class T, class B>
std::pair<Tensor<T, B>, Tensor<T, B>> split_channels(const Tensor<T, B>& y, std::int64_t first) {
  expect_nchw(y.shape(), "split_channels");
  if (first < 0 || first > y.dim(1))
    throw ShapeError("split_channels: cannot split " + std::to_string(first) + " channels off shape " +
                     y.shape().str());
  const std::int64_t n = y.dim(0), hw = y.dim(2) * y.dim(3), ca = first * hw, cb = (y.dim(1) - first) * hw;
  Tensor<T, B> a(Shape{n, first, y.dim(2), y.dim(3)});
  Tensor<T, B> b(Shape{n, y.dim(1) - first, y.dim(2), y.dim(3)});
  B::template copy_2d<T>(n, ca, y.data(), ca + cb, a.data(), ca);
  B::template copy_2d<T>(n, cb, y.data() + ca, ca + cb, b.data(), cb);
  return {a, b};
}

/// acc += x, element-wise, for tensors of equal shape (through B::add_2d as one row).
template <class T, class B>
void accumulate(Tensor<T, B>& acc, const Tensor<T, B>& x, const std::string& where) {
  expect_shape(x.shape(), acc.shape(), where);
  const auto n = static_cast<std::int64_t>(x.size());
  B::template add_2d<T>(1, n, x.data(), n, acc.data(), n);
}

/// Rows `rows` of the outermost axis of x, in that order: [N, ...] -> [rows.size(), ...].
template <class T, class B>
Tensor<T, B> gather_rows(const Tensor<T, B>& x, std::span<const std::int64_t> rows) {
  Shape shape = x.shape();
  const std::int64_t inner = shape[0] ? x.numel() / shape[0] : 0;
  for (std::int64_t r : rows)
    if (r < 0 || r >= shape[0])
      throw ShapeError("gather_rows: row " + std::to_string(r) + " outside shape " + shape.str());
  shape[0] = static_cast<std::int64_t>(rows.size());
  Tensor<T, B> out(shape);
  for (std::size_t i = 0; i < rows.size(); ++i)
    B::template copy<T>(out.data() + static_cast<std::int64_t>(i) * inner, x.data() + rows[i] * inner,
                        static_cast<std::size_t>(inner));
  return out;
}

/// dst[rows[i]] = src[i]: the inverse of gather_rows for distinct rows.
template <class T, class B>
void scatter_rows(const Tensor<T, B>& src, std::span<const std::int64_t> rows, Tensor<T, B>& dst) {
  const std::int64_t inner = dst.dim(0) ? dst.numel() / dst.dim(0) : 0;
  if (src.dim(0) != static_cast<std::int64_t>(rows.size()) || src.numel() != inner * src.dim(0))
    throw ShapeError("scatter_rows: source shape " + src.shape().str() + " does not fit " +
                     std::to_string(rows.size()) + " rows of shape " + dst.shape().str());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= dst.dim(0))
      throw ShapeError("scatter_rows: row " + std::to_string(rows[i]) + " outside shape " + dst.shape().str());
    B::template copy<T>(dst.data() + rows[i] * inner, src.data() + static_cast<std::int64_t>(i) * inner,
                        static_cast<std::size_t>(inner));
  }
}

}  // namespace progdiff::unet
