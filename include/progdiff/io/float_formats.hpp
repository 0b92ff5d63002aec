#pragma once
// Bit-exact conversions between float and the narrow floating formats a checkpoint may hold.
// binary16 and bfloat16 go through Eigen's half and bfloat16 types (round to nearest, ties to
// even, independent of the floating-point environment); the two F8 formats, which Eigen does not
// have, are decoded here (checkpoints are only read in them).
#include <cmath>
#include <cstdint>
#include <limits>

#include <Eigen/Core>

namespace progdiff::io {

/// IEEE 754 binary16 bits of `value` (torch.Tensor.half(): round to nearest even; infinities
/// stay infinite, NaNs stay NaN). Eigen::half does the rounding (F16C where the CPU has it).
inline std::uint16_t float_to_f16_bits(float value) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(value));
}

/// The float equal to the binary16 `bits` (exact).
inline float f16_bits_to_float(std::uint16_t bits) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(bits));
}

/// bfloat16 bits of `value` (torch.Tensor.bfloat16(): round to nearest even; a NaN becomes the
/// quiet NaN of its sign, as in PyTorch), through Eigen::bfloat16.
inline std::uint16_t float_to_bf16_bits(float value) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(value));
}

/// The float equal to the bfloat16 `bits` (exact: bfloat16 is the top half of a float).
inline float bf16_bits_to_float(std::uint16_t bits) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(bits));
}

/// The float equal to an F8_E4M3 (OCP E4M3FN) byte: bias 7, no infinities, S.1111.111 is NaN.
inline float f8_e4m3_bits_to_float(std::uint8_t bits) {
  const bool negative = bits & 0x80u;
  const int exponent = (bits >> 3) & 0xf;
  const int mantissa = bits & 0x7;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7)
    magnitude = std::numeric_limits<float>::quiet_NaN();
  else if (exponent == 0)
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);
  else
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  return negative ? -magnitude : magnitude;
}

/// The float equal to an F8_E5M2 byte: the top byte of a binary16 with the same meaning.
inline float f8_e5m2_bits_to_float(std::uint8_t bits) {
  return f16_bits_to_float(static_cast<std::uint16_t>(bits << 8));
}

}  // namespace progdiff::io
