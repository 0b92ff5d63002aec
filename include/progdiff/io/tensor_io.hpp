#pragma once
// Moving progdiff::Tensor values in and out of a SafetensorsFile (the analogue of
// safetensors.torch.load_file / save_file for one tensor).
#include <optional>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/shape.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/io/safetensors_file.hpp"

namespace progdiff::io {

/// Tensor `name` of `file`, converted to T (see SafetensorsFile::values) and copied onto back
/// end B. With `expected`, a ShapeError naming the key and the source unless the stored shape
/// equals it; a FormatError if the key is absent.
template <StorableElement T, class B = backend::Cpu>
Tensor<T, B> to_tensor(const SafetensorsFile& file, const std::string& name,
                       std::optional<Shape> expected = std::nullopt) {
  const TensorRecord& record = file.at(name);
  const std::string where = file.source + ": tensor '" + name + "'";
  if (record.shape.size() > static_cast<std::size_t>(Shape::kMaxRank))
    throw ShapeError(where + ": shape " + shape_string(record.shape) + " has rank " +
                     std::to_string(record.shape.size()) + ", more than the supported " +
                     std::to_string(Shape::kMaxRank));
  const Shape shape(record.shape.begin(), record.shape.end());
  if (expected) expect_shape(shape, *expected, where);
  const std::vector<T> values = file.values<T>(name);
  return Tensor<T, B>::from_host(shape, values);
}

/// Stores the elements of `tensor` under `name` as the DType matching T, replacing any tensor of
/// that name.
template <StorableElement T, class B>
void put_tensor(SafetensorsFile& file, const std::string& name, const Tensor<T, B>& tensor) {
  const std::vector<T> values = tensor.empty() ? std::vector<T>{} : tensor.to_host();
  file.put<T>(name, std::vector<std::int64_t>(tensor.shape().begin(), tensor.shape().end()), values);
}

}  // namespace progdiff::io
