#pragma once
// Bit-exact conversions between float and the narrow floating formats a checkpoint may hold.
//
// Narrowing rounds to nearest, ties to even, in integer arithmetic so the result does not depend
// on the floating-point environment; infinities stay infinite and NaNs stay NaN (quieted).
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace progdiff::io {

/// IEEE 754 binary16 bits of `value` (torch.Tensor.half(), round to nearest even).
inline std::uint16_t float_to_f16_bits(float value) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) {  // Inf or NaN; a NaN keeps its top payload bits and is made quiet
    if (a == 0x7f800000u) return sign | 0x7c00u;
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds past the largest half, 65504
  if (a >= 0x38800000u) {                       // a normal half: rebias the exponent, round 13 bits
    std::uint32_t h = (a >> 13) - (112u << 10);
    const std::uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
    return static_cast<std::uint16_t>(sign | h);
  }
  // Below 2^-14: a subnormal half counts units of 2^-24. The float is m * 2^(e - 150), so the
  // count is m * 2^(e - 126); float subnormals (e == 0) are far below half a unit.
  const std::uint32_t e = a >> 23;
  if (e < 102) return sign;  // below 2^-25, half a unit: rounds to zero (2^-25 itself ties to 0)
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - e;  // 14 .. 24
  std::uint32_t q = m >> shift;
  const std::uint32_t rest = m & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (q & 1u))) ++q;  // may carry into the smallest normal
  return static_cast<std::uint16_t>(sign | q);
}

/// The float equal to the binary16 `bits` (exact).
inline float f16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1fu) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // exact: 10 bits
    return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(magnitude));
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

/// bfloat16 bits of `value` (torch.Tensor.bfloat16(), round to nearest even).
inline std::uint16_t float_to_bf16_bits(float value) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  // Adding 0x7fff (+1 when the kept part is odd) carries exactly when the dropped half rounds up;
  // finite values past the largest bfloat16 carry into the infinity pattern, as they should.
  const std::uint32_t bias = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + bias) >> 16);
}

/// The float equal to the bfloat16 `bits` (exact: bfloat16 is the top half of a float).
inline float bf16_bits_to_float(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
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
