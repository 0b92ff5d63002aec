#pragma once
// Element types of the safetensors format, named as the format's header spells them.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "progdiff/core/error.hpp"

namespace progdiff::io {

/// The element types of a safetensors tensor (huggingface safetensors `Dtype`); F8_E4M3 is the
/// OCP "E4M3FN" variant (no infinities) and F8_E5M2 the IEEE-like one (Micikevicius et al. 2022).
enum class DType { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2 };

inline constexpr std::array<DType, 15> kAllDTypes = {
    DType::BOOL, DType::U8,  DType::I8,  DType::I16, DType::U16, DType::F16,     DType::BF16,   DType::I32,
    DType::U32,  DType::F32, DType::F64, DType::I64, DType::U64, DType::F8_E4M3, DType::F8_E5M2};

/// Bytes per element.
constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::BOOL:
    case DType::U8:
    case DType::I8:
    case DType::F8_E4M3:
    case DType::F8_E5M2:
      return 1;
    case DType::I16:
    case DType::U16:
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::I32:
    case DType::U32:
    case DType::F32:
      return 4;
    case DType::F64:
    case DType::I64:
    case DType::U64:
      return 8;
  }
  return 0;
}

/// The header spelling ("F32", "BF16", ...).
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::BOOL:
      return "BOOL";
    case DType::U8:
      return "U8";
    case DType::I8:
      return "I8";
    case DType::I16:
      return "I16";
    case DType::U16:
      return "U16";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::U32:
      return "U32";
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
    case DType::U64:
      return "U64";
    case DType::F8_E4M3:
      return "F8_E4M3";
    case DType::F8_E5M2:
      return "F8_E5M2";
  }
  return "?";
}

constexpr bool is_floating(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32 || t == DType::F64 || t == DType::F8_E4M3 ||
         t == DType::F8_E5M2;
}

/// The DType spelled `name` (case-sensitive, as the format requires); a FormatError naming `where`
/// and the spelling otherwise.
inline DType parse_dtype(std::string_view name, const std::string& where) {
  for (DType t : kAllDTypes)
    if (dtype_name(t) == name) return t;
  throw FormatError(where + ": unknown dtype \"" + std::string(name) + "\"");
}

}  // namespace progdiff::io
