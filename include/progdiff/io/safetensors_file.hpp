#pragma once
// SafetensorsFile: the contents of a safetensors file held in memory, by tensor name.
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/io/dtype.hpp"
#include "progdiff/io/float_formats.hpp"

namespace progdiff::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian elements and progdiff copies them as they are");

/// The header key the format reserves for string metadata; no tensor may carry this name.
inline constexpr std::string_view kMetadataKey = "__metadata__";

/// One tensor of a file: its element type, its shape (outermost first, C order) and its raw
/// little-endian bytes, product(shape) * dtype_size(dtype) of them.
struct TensorRecord {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

/// Shape as "[2, 3]" for messages.
inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// The element types put() and values() accept: bool, the integers (not character types) of 1, 2,
/// 4 or 8 bytes, float and double.
template <class T>
concept StorableElement = std::same_as<T, bool> || std::same_as<T, float> || std::same_as<T, double> ||
    (std::integral<T> && !std::same_as<T, char> && !std::same_as<T, wchar_t> && !std::same_as<T, char8_t> &&
     !std::same_as<T, char16_t> && !std::same_as<T, char32_t> &&
     (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8));

/// The DType that stores T unchanged (float as F32, double as F64, std::int64_t as I64, ...).
template <StorableElement T>
constexpr DType dtype_of() {
  if constexpr (std::same_as<T, bool>)
    return DType::BOOL;
  else if constexpr (std::same_as<T, float>)
    return DType::F32;
  else if constexpr (std::same_as<T, double>)
    return DType::F64;
  else if constexpr (sizeof(T) == 1)
    return std::is_signed_v<T> ? DType::I8 : DType::U8;
  else if constexpr (sizeof(T) == 2)
    return std::is_signed_v<T> ? DType::I16 : DType::U16;
  else if constexpr (sizeof(T) == 4)
    return std::is_signed_v<T> ? DType::I32 : DType::U32;
  else
    return std::is_signed_v<T> ? DType::I64 : DType::U64;
}

namespace detail {

template <class U>
U load(const std::byte* p) {
  U u;
  std::memcpy(&u, p, sizeof(U));
  return u;
}

// Element i of a floating record, widened exactly to double.
inline double floating_element(DType t, const std::byte* data, std::size_t i) {
  switch (t) {
    case DType::F16:
      return f16_bits_to_float(load<std::uint16_t>(data + 2 * i));
    case DType::BF16:
      return bf16_bits_to_float(load<std::uint16_t>(data + 2 * i));
    case DType::F32:
      return load<float>(data + 4 * i);
    case DType::F64:
      return load<double>(data + 8 * i);
    case DType::F8_E4M3:
      return f8_e4m3_bits_to_float(load<std::uint8_t>(data + i));
    case DType::F8_E5M2:
      return f8_e5m2_bits_to_float(load<std::uint8_t>(data + i));
    default:
      return 0;
  }
}

// Element i of an integer or BOOL record; U64 values live in `wide`, all others in `narrow`.
struct IntegerElement {
  bool is_wide = false;
  std::int64_t narrow = 0;
  std::uint64_t wide = 0;
  std::string str() const { return is_wide ? std::to_string(wide) : std::to_string(narrow); }
};

inline IntegerElement integer_element(DType t, const std::byte* data, std::size_t i) {
  switch (t) {
    case DType::BOOL:
      return {false, load<std::uint8_t>(data + i) != 0, 0};
    case DType::U8:
      return {false, load<std::uint8_t>(data + i), 0};
    case DType::I8:
      return {false, load<std::int8_t>(data + i), 0};
    case DType::I16:
      return {false, load<std::int16_t>(data + 2 * i), 0};
    case DType::U16:
      return {false, load<std::uint16_t>(data + 2 * i), 0};
    case DType::I32:
      return {false, load<std::int32_t>(data + 4 * i), 0};
    case DType::U32:
      return {false, load<std::uint32_t>(data + 4 * i), 0};
    case DType::I64:
      return {false, load<std::int64_t>(data + 8 * i), 0};
    case DType::U64:
      return {true, 0, load<std::uint64_t>(data + 8 * i)};
    default:
      return {};
  }
}

template <class T>
bool integer_fits(std::int64_t v) {
  if constexpr (std::same_as<T, bool>)
    return v == 0 || v == 1;
  else
    return std::in_range<T>(v);
}
template <class T>
bool integer_fits(std::uint64_t v) {
  if constexpr (std::same_as<T, bool>)
    return v <= 1;
  else
    return std::in_range<T>(v);
}

}  // namespace detail

/// The tensors and string metadata of one safetensors file (huggingface safetensors
/// `safe_open` / `save_file`), ordered by name; `source` names the file in every message.
class SafetensorsFile {
 public:
  std::map<std::string, TensorRecord> tensors;
  std::map<std::string, std::string> metadata;
  std::string source = "<memory>";

  bool contains(const std::string& name) const { return tensors.count(name) != 0; }

  /// The record called `name`; a FormatError naming the key and the source when absent.
  const TensorRecord& at(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw FormatError(source + ": no tensor named '" + name + "'");
    return it->second;
  }

  /// The elements of `name` converted to T. Floating T reads every dtype (F16, BF16 and F8
  /// widen exactly); integral T reads integer and BOOL records and refuses values outside
  /// its range and floating records, with a FormatError naming the key.
  template <StorableElement T>
  std::vector<T> values(const std::string& name) const {
    const TensorRecord& r = at(name);
    const std::size_t n = r.bytes.size() / dtype_size(r.dtype);
    std::vector<T> out(n);
    const std::byte* data = r.bytes.data();
    if constexpr (std::is_floating_point_v<T>) {
      for (std::size_t i = 0; i < n; ++i) {
        if (is_floating(r.dtype)) {
          out[i] = static_cast<T>(detail::floating_element(r.dtype, data, i));
        } else {
          const auto v = detail::integer_element(r.dtype, data, i);
          out[i] = v.is_wide ? static_cast<T>(v.wide) : static_cast<T>(v.narrow);
        }
      }
    } else {
      if (is_floating(r.dtype))
        throw FormatError(source + ": tensor '" + name + "' holds " + std::string(dtype_name(r.dtype)) +
                          " values, which cannot be read as integers");
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = detail::integer_element(r.dtype, data, i);
        if (!(v.is_wide ? detail::integer_fits<T>(v.wide) : detail::integer_fits<T>(v.narrow)))
          throw FormatError(source + ": tensor '" + name + "' element " + std::to_string(i) + " (" + v.str() +
                            ") does not fit the requested type");
        out[i] = v.is_wide ? static_cast<T>(v.wide) : static_cast<T>(v.narrow);
      }
    }
    return out;
  }

  /// Stores `values` under `name` as dtype_of<T>(), replacing any tensor of that name; a
  /// ShapeError naming the key unless they fill `shape`.
  template <StorableElement T>
  void put(const std::string& name, std::vector<std::int64_t> shape, std::span<const T> values) {
    check_new_record(name, shape, values.size());
    TensorRecord r{dtype_of<T>(), std::move(shape), std::vector<std::byte>(values.size() * sizeof(T))};
    if constexpr (std::same_as<T, bool>) {
      for (std::size_t i = 0; i < values.size(); ++i)
        r.bytes[i] = std::byte{values[i] ? std::uint8_t{1} : std::uint8_t{0}};
    } else if (!values.empty()) {
      std::memcpy(r.bytes.data(), values.data(), r.bytes.size());
    }
    tensors[name] = std::move(r);
  }
  template <StorableElement T>
  requires(!std::same_as<T, bool>)  // std::vector<bool> has no contiguous storage to view
      void put(const std::string& name, std::vector<std::int64_t> shape, const std::vector<T>& values) {
    put<T>(name, std::move(shape), std::span<const T>(values));
  }

  /// Stores float `values` under `name` as `storage`, one of F16, BF16 (rounded to nearest
  /// even, as torch .half() / .bfloat16()), F32 or F64.
  void put_as(const std::string& name, std::vector<std::int64_t> shape, std::span<const float> values, DType storage) {
    check_new_record(name, shape, values.size());
    TensorRecord r{storage, std::move(shape), std::vector<std::byte>(values.size() * dtype_size(storage))};
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::byte* p = r.bytes.data() + i * dtype_size(storage);
      if (storage == DType::F16) {
        const std::uint16_t h = float_to_f16_bits(values[i]);
        std::memcpy(p, &h, 2);
      } else if (storage == DType::BF16) {
        const std::uint16_t h = float_to_bf16_bits(values[i]);
        std::memcpy(p, &h, 2);
      } else if (storage == DType::F32) {
        std::memcpy(p, &values[i], 4);
      } else if (storage == DType::F64) {
        const double d = values[i];
        std::memcpy(p, &d, 8);
      } else {
        throw ConfigError(source + ": tensor '" + name + "': put_as stores floats as F16, BF16, F32 or F64, not " +
                          std::string(dtype_name(storage)));
      }
    }
    tensors[name] = std::move(r);
  }

 private:
  void check_new_record(const std::string& name, const std::vector<std::int64_t>& shape, std::size_t count) const {
    if (name == kMetadataKey)
      throw FormatError(source + ": '" + name + "' is reserved for metadata and cannot name a tensor");
    std::uint64_t n = 1;
    bool overflow = false;
    for (auto d : shape) {
      if (d < 0)
        throw ShapeError(source + ": tensor '" + name + "': negative dimension in shape " + shape_string(shape));
      overflow = overflow || __builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n);
    }
    if (overflow || n != count)
      throw ShapeError(source + ": tensor '" + name + "': " + std::to_string(count) + " values do not fill shape " +
                       shape_string(shape));
  }
};

}  // namespace progdiff::io
