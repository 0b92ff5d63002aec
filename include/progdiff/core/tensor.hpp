#pragma once
// Tensor<T, B>: a contiguous, row-major array of T with a Shape, living on back end B.
//
// Copies share storage (like a PyTorch tensor); clone() copies the elements. A layer keeps
// what backward needs by holding a copy, and drops it after backward, so activations are
// freed as soon as they are used. Tensor::borrow wraps memory the library does not own.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "progdiff/backend/backend.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/core/shape.hpp"

namespace progdiff {

namespace backend {
struct Cpu;
}

template <class T = float, class B = backend::Cpu>
class Tensor {
 public:
  using value_type = T;
  using backend_type = B;

  Tensor() = default;

  /// Uninitialized storage for `shape` on back end B.
  explicit Tensor(Shape shape) : shape_(shape) {
    static_assert(check_backend<B>());
    const auto n = static_cast<std::size_t>(shape.numel());
    T* p = n ? B::template allocate<T>(n) : nullptr;
    storage_ = std::shared_ptr<T>(p, [n](T* q) {
      if (q) B::template deallocate<T>(q, n);
    });
  }

  static Tensor zeros(Shape shape) { return full(shape, T(0)); }
  static Tensor full(Shape shape, T value) {
    Tensor t(shape);
    B::template fill<T>(t.data(), t.size(), value);
    return t;
  }
  /// Copies host values onto the back end; their count must match the shape.
  static Tensor from_host(Shape shape, std::span<const T> values) {
    if (static_cast<std::int64_t>(values.size()) != shape.numel())
      throw ShapeError("Tensor::from_host: " + std::to_string(values.size()) + " values do not fill shape " +
                       shape.str());
    Tensor t(shape);
    B::template copy_from_host<T>(t.data(), values.data(), values.size());
    return t;
  }
  static Tensor from_host(Shape shape, const std::vector<T>& values) {
    return from_host(shape, std::span<const T>(values.data(), values.size()));
  }
  /// A non-owning view of `ptr` (memory of back end B) that must outlive the tensor.
  static Tensor borrow(T* ptr, Shape shape) {
    Tensor t;
    t.shape_ = shape;
    t.storage_ = std::shared_ptr<T>(ptr, [](T*) {});
    return t;
  }

  T* data() const { return storage_.get() ? storage_.get() + offset_ : nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  std::int64_t dim(int i) const { return shape_[i]; }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t size() const { return static_cast<std::size_t>(shape_.numel()); }
  bool empty() const { return storage_ == nullptr; }

  std::vector<T> to_host() const {
    std::vector<T> out(size());
    if (!out.empty()) B::template copy_to_host<T>(out.data(), data(), out.size());
    return out;
  }

  /// A deep copy.
  Tensor clone() const {
    Tensor t(shape_);
    B::template copy<T>(t.data(), data(), size());
    return t;
  }
  /// Copies the elements of `other`, whose shape must equal this one's.
  void copy_from(const Tensor& other) {
    expect_shape(other.shape(), shape_, "Tensor::copy_from");
    B::template copy<T>(data(), other.data(), size());
  }
  void fill(T value) { B::template fill<T>(data(), size(), value); }
  void zero() { fill(T(0)); }

  /// The same storage under another shape with the same element count.
  Tensor reshape(Shape shape) const {
    if (shape.numel() != numel())
      throw ShapeError("Tensor::reshape: cannot view shape " + shape_.str() + " as " + shape.str());
    Tensor t = *this;
    t.shape_ = shape;
    return t;
  }
  /// Rows [begin, end) of the outermost dimension, sharing storage.
  Tensor slice(std::int64_t begin, std::int64_t end) const {
    if (rank() == 0 || begin < 0 || end > shape_[0] || begin > end)
      throw ShapeError("Tensor::slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                       ") outside the first dimension of shape " + shape_.str());
    Tensor t = *this;
    const std::int64_t inner = shape_[0] ? numel() / shape_[0] : 0;
    t.shape_[0] = end - begin;
    t.offset_ += static_cast<std::size_t>(begin * inner);
    return t;
  }

  /// Frees this handle's reference to the storage.
  void reset() {
    storage_.reset();
    shape_ = Shape{};
    offset_ = 0;
  }

 private:
  std::shared_ptr<T> storage_;
  std::size_t offset_ = 0;
  Shape shape_;
};

}  // namespace progdiff
