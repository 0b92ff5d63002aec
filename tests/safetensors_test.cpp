#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/io/float_formats.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"

namespace progdiff_tests_safetensors {

namespace fs = std::filesystem;
using namespace progdiff::io;

namespace {

const fs::path kFixtures = fs::path(PROGDIFF_FIXTURES_DIR) / "safetensors";

std::vector<std::byte> as_bytes(std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

// A file with `header` declared as `declared_length` bytes long (its real length by default),
// followed by `buffer_size` zero bytes.
std::vector<std::byte> file_with_header(std::string_view header, std::size_t buffer_size = 0,
                                        std::uint64_t declared_length = UINT64_MAX) {
  const std::uint64_t n = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::vector<std::byte> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>((n >> (8 * i)) & 0xffu));
  const auto h = as_bytes(header);
  out.insert(out.end(), h.begin(), h.end());
  out.resize(out.size() + buffer_size, std::byte{0});
  return out;
}

// The message of the FormatError that parsing `bytes` throws, or a marker when none is thrown.
std::string parse_error(const std::vector<std::byte>& bytes) {
  try {
    parse_safetensors(bytes, "case.safetensors");
  } catch (const progdiff::FormatError& e) {
    return e.what();
  }
  return "<parsed without a FormatError>";
}

#define CHECK_PARSE_ERROR(bytes, fragment)                        \
  do {                                                            \
    const std::string message = parse_error(bytes);               \
    INFO("message: " << message);                                 \
    CHECK(message.find("case.safetensors") != std::string::npos); \
    CHECK(message.find(fragment) != std::string::npos);           \
  } while (false)

std::vector<std::byte> read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

// A fresh directory under the system's temporary directory, removed with its contents at scope exit.
struct ScratchDirectory {
  fs::path path;
  ScratchDirectory() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("progdiff_safetensors_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~ScratchDirectory() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

float f32(std::uint32_t bits) { return std::bit_cast<float>(bits); }
bool is_f16_nan(std::uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool is_bf16_nan(std::uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Element types and conversions

TEST_CASE("safetensors dtypes have the sizes and spellings of the format") {
  const std::pair<DType, std::pair<std::size_t, const char*>> table[] = {
      {DType::BOOL, {1, "BOOL"}}, {DType::U8, {1, "U8"}},           {DType::I8, {1, "I8"}},
      {DType::I16, {2, "I16"}},   {DType::U16, {2, "U16"}},         {DType::F16, {2, "F16"}},
      {DType::BF16, {2, "BF16"}}, {DType::I32, {4, "I32"}},         {DType::U32, {4, "U32"}},
      {DType::F32, {4, "F32"}},   {DType::F64, {8, "F64"}},         {DType::I64, {8, "I64"}},
      {DType::U64, {8, "U64"}},   {DType::F8_E4M3, {1, "F8_E4M3"}}, {DType::F8_E5M2, {1, "F8_E5M2"}},
  };
  for (const auto& [dtype, expected] : table) {
    CHECK(dtype_size(dtype) == expected.first);
    CHECK(dtype_name(dtype) == expected.second);
    CHECK(parse_dtype(expected.second, "here") == dtype);
  }
  CHECK_THROWS_AS(parse_dtype("f32", "here"), progdiff::FormatError);
  CHECK_THROWS_AS(parse_dtype("F128", "here"), progdiff::FormatError);
}

TEST_CASE("float to binary16 rounds to nearest even at closed-form bit patterns") {
  CHECK(float_to_f16_bits(1.0f) == 0x3c00);
  CHECK(float_to_f16_bits(-2.0f) == 0xc000);
  CHECK(float_to_f16_bits(0.0f) == 0x0000);
  CHECK(float_to_f16_bits(-0.0f) == 0x8000);
  CHECK(float_to_f16_bits(65504.0f) == 0x7bff);  // largest half
  CHECK(float_to_f16_bits(std::nextafter(65520.0f, 0.0f)) == 0x7bff);
  CHECK(float_to_f16_bits(65520.0f) == 0x7c00);  // tie between 65504 and 65536: even is inf
  CHECK(float_to_f16_bits(1e10f) == 0x7c00);
  CHECK(float_to_f16_bits(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
  CHECK(float_to_f16_bits(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(float_to_f16_bits(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 2^-24: even is 0
  CHECK(float_to_f16_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(float_to_f16_bits(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 units: tie to even 2
  CHECK(float_to_f16_bits(std::ldexp(5.0f, -25)) == 0x0002);         // 2.5 units: tie to even 2
  CHECK(float_to_f16_bits(std::ldexp(1023.5f, -24)) == 0x0400);      // tie at the top of the subnormals
  CHECK(float_to_f16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie: keep even 0x3c00
  CHECK(float_to_f16_bits(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);  // tie: round up to even
  CHECK(float_to_f16_bits(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)) == 0x3c01);
  CHECK(float_to_f16_bits(2047.5f) == 0x6800);  // tie between odd 2047 and even 2048
  CHECK(float_to_f16_bits(0.1f) == 0x2e66);
  CHECK(float_to_f16_bits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(float_to_f16_bits(-std::numeric_limits<float>::infinity()) == 0xfc00);
  CHECK(is_f16_nan(float_to_f16_bits(std::numeric_limits<float>::quiet_NaN())));
  CHECK(is_f16_nan(float_to_f16_bits(f32(0x7f800001u))));  // a signalling NaN whose payload is below half's
  CHECK(float_to_f16_bits(f32(0xffc00000u)) == 0xfe00);
}

TEST_CASE("binary16 to float is exact at closed-form bit patterns") {
  CHECK(f16_bits_to_float(0x3c00) == 1.0f);
  CHECK(f16_bits_to_float(0x3555) == 0.333251953125f);  // 1.0101010101b * 2^-2
  CHECK(f16_bits_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f16_bits_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(f16_bits_to_float(0x8001) == -std::ldexp(1.0f, -24));
  CHECK(f16_bits_to_float(0x7bff) == 65504.0f);
  CHECK(f16_bits_to_float(0xc000) == -2.0f);
  CHECK(std::bit_cast<std::uint32_t>(f16_bits_to_float(0x8000)) == 0x80000000u);
  CHECK(f16_bits_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(f16_bits_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f16_bits_to_float(0x7e00)));
  CHECK(std::isnan(f16_bits_to_float(0x7c01)));
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {  // every finite half survives the round trip
    if (is_f16_nan(static_cast<std::uint16_t>(h))) continue;
    REQUIRE(float_to_f16_bits(f16_bits_to_float(static_cast<std::uint16_t>(h))) == h);
  }
}

TEST_CASE("float to bfloat16 rounds to nearest even at closed-form bit patterns") {
  CHECK(float_to_bf16_bits(1.0f) == 0x3f80);
  CHECK(float_to_bf16_bits(-0.0f) == 0x8000);
  CHECK(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);  // tie: keep even
  CHECK(float_to_bf16_bits(1.0f + std::ldexp(3.0f, -8)) == 0x3f82);  // tie: up to even
  CHECK(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);
  CHECK(float_to_bf16_bits(f32(0x7f7f7fffu)) == 0x7f7f);
  CHECK(float_to_bf16_bits(f32(0x7f7f8000u)) == 0x7f80);  // tie at the top: even is infinity
  CHECK(float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);
  CHECK(float_to_bf16_bits(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(float_to_bf16_bits(f32(0x00000001u)) == 0x0000);
  CHECK(float_to_bf16_bits(f32(0x00008000u)) == 0x0000);  // subnormal tie to even
  CHECK(float_to_bf16_bits(f32(0x00018000u)) == 0x0002);
  CHECK(is_bf16_nan(float_to_bf16_bits(f32(0x7f800001u))));
  CHECK(is_bf16_nan(float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN())));
  CHECK(bf16_bits_to_float(0x3f80) == 1.0f);
  CHECK(bf16_bits_to_float(0xc049) == -3.140625f);
  CHECK(bf16_bits_to_float(0x0001) == std::ldexp(1.0f, -133));
  CHECK(std::isnan(bf16_bits_to_float(0x7fc0)));
  CHECK(bf16_bits_to_float(0xff80) == -std::numeric_limits<float>::infinity());
}

TEST_CASE("F8 decodings match the OCP E4M3FN and E5M2 closed forms") {
  CHECK(f8_e4m3_bits_to_float(0x38) == 1.0f);
  CHECK(f8_e4m3_bits_to_float(0x7e) == 448.0f);  // largest finite
  CHECK(f8_e4m3_bits_to_float(0xfe) == -448.0f);
  CHECK(f8_e4m3_bits_to_float(0x01) == std::ldexp(1.0f, -9));
  CHECK(f8_e4m3_bits_to_float(0x08) == std::ldexp(1.0f, -6));
  CHECK(std::isnan(f8_e4m3_bits_to_float(0x7f)));
  CHECK(std::isnan(f8_e4m3_bits_to_float(0xff)));
  CHECK(f8_e4m3_bits_to_float(0x78) == 256.0f);  // E4M3FN has no infinity
  CHECK(f8_e5m2_bits_to_float(0x3c) == 1.0f);
  CHECK(f8_e5m2_bits_to_float(0x7b) == 57344.0f);
  CHECK(f8_e5m2_bits_to_float(0x01) == std::ldexp(1.0f, -16));
  CHECK(f8_e5m2_bits_to_float(0x7c) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f8_e5m2_bits_to_float(0x7d)));
}

TEST_CASE("F16 and BF16 conversions agree with torch on the fixture's inputs") {
  const SafetensorsFile fixture = read_safetensors(kFixtures / "float_conversions.safetensors");
  CHECK(fixture.metadata.at("format_version") == "1");
  const auto inputs = fixture.values<std::uint32_t>("input_bits");
  const auto f16 = fixture.values<std::uint16_t>("f16_bits");
  const auto bf16 = fixture.values<std::uint16_t>("bf16_bits");
  const auto f16_back = fixture.values<float>("f16_as_f32");
  const auto bf16_back = fixture.values<float>("bf16_as_f32");
  REQUIRE(inputs.size() > 5000);
  REQUIRE(f16.size() == inputs.size());
  REQUIRE(bf16.size() == inputs.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const float x = f32(inputs[i]);
    if (std::isnan(x)) {  // payload handling differs between implementations; NaN must stay NaN
      mismatches += !is_f16_nan(float_to_f16_bits(x)) + !is_bf16_nan(float_to_bf16_bits(x));
      continue;
    }
    if (float_to_f16_bits(x) != f16[i] || float_to_bf16_bits(x) != bf16[i]) {
      if (++mismatches < 10)
        MESSAGE("input 0x" << std::hex << inputs[i] << ": f16 0x" << float_to_f16_bits(x) << " vs torch 0x" << f16[i]
                           << ", bf16 0x" << float_to_bf16_bits(x) << " vs torch 0x" << bf16[i]);
    }
    mismatches += std::bit_cast<std::uint32_t>(f16_bits_to_float(f16[i])) != std::bit_cast<std::uint32_t>(f16_back[i]);
    mismatches +=
        std::bit_cast<std::uint32_t>(bf16_bits_to_float(bf16[i])) != std::bit_cast<std::uint32_t>(bf16_back[i]);
  }
  CHECK(mismatches == 0);
}

// ---------------------------------------------------------------------------------------------
// Writing and reading back

namespace {

// A record of every dtype: native element types through put(), F16 / BF16 through put_as(), F8
// as raw bytes.
SafetensorsFile every_dtype_file() {
  SafetensorsFile file;
  file.metadata = {{"format", "pt"}, {"note", "caf\xc3\xa9"}};
  const bool flags[] = {true, false, false, true};
  file.put<bool>("bool", {2, 2}, std::span<const bool>(flags));
  file.put<std::uint8_t>("u8", {3}, std::vector<std::uint8_t>{0, 7, 255});
  file.put<std::int8_t>("i8", {3}, std::vector<std::int8_t>{-128, 0, 127});
  file.put<std::int16_t>("i16", {3}, std::vector<std::int16_t>{-32768, 1, 32767});
  file.put<std::uint16_t>("u16", {3}, std::vector<std::uint16_t>{0, 300, 65535});
  file.put<std::int32_t>("i32", {1, 3}, std::vector<std::int32_t>{INT32_MIN, -5, INT32_MAX});
  file.put<std::uint32_t>("u32", {3}, std::vector<std::uint32_t>{0, 70000, UINT32_MAX});
  file.put<float>("f32", {2, 2}, std::vector<float>{1.5f, -0.0f, 3e38f, -1e-40f});
  file.put<double>("f64", {2}, std::vector<double>{0.1, -1e300});
  file.put<std::int64_t>("i64", {2}, std::vector<std::int64_t>{INT64_MIN, INT64_MAX});
  file.put<std::uint64_t>("u64", {2}, std::vector<std::uint64_t>{0, UINT64_MAX});
  const float halves[] = {1.0f, -2.5f, 65504.0f};
  file.put_as("f16", {3}, halves, DType::F16);
  file.put_as("bf16", {3}, halves, DType::BF16);
  file.tensors["f8_e4m3"] = {DType::F8_E4M3, {2}, {std::byte{0x38}, std::byte{0x7e}}};
  file.tensors["f8_e5m2"] = {DType::F8_E5M2, {2}, {std::byte{0x3c}, std::byte{0xfc}}};
  return file;
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype, shape, byte and metadata entry") {
  const SafetensorsFile original = every_dtype_file();
  REQUIRE(original.tensors.size() == kAllDTypes.size());
  const std::vector<std::byte> bytes = serialize_safetensors(original);
  const SafetensorsFile back = parse_safetensors(bytes, "round_trip");
  CHECK(back.source == "round_trip");
  CHECK(back.metadata == original.metadata);
  REQUIRE(back.tensors.size() == original.tensors.size());
  for (const auto& entry : original.tensors) {
    const std::string& name = entry.first;  // a plain reference: INFO captures it
    const TensorRecord& record = entry.second;
    INFO("tensor " << name);
    REQUIRE(back.contains(name));
    const TensorRecord& r = back.at(name);
    CHECK(r.dtype == record.dtype);
    CHECK(r.shape == record.shape);
    CHECK(r.bytes == record.bytes);
  }
  // The values as the closed forms say, read through the conversions.
  CHECK(back.values<std::int64_t>("bool") == std::vector<std::int64_t>{1, 0, 0, 1});
  CHECK(back.values<int>("i8") == std::vector<int>{-128, 0, 127});
  CHECK(back.values<std::int64_t>("i32") == std::vector<std::int64_t>{INT32_MIN, -5, INT32_MAX});
  CHECK(back.values<std::uint64_t>("u64") == std::vector<std::uint64_t>{0, UINT64_MAX});
  CHECK(back.values<double>("f64") == std::vector<double>{0.1, -1e300});
  CHECK(back.values<float>("f16") == std::vector<float>{1.0f, -2.5f, 65504.0f});
  CHECK(back.values<float>("bf16") == std::vector<float>{1.0f, -2.5f, 65536.0f});  // 65504 rounds to 2^16
  CHECK(back.values<float>("f8_e4m3") == std::vector<float>{1.0f, 448.0f});
  CHECK(back.values<float>("f8_e5m2") == std::vector<float>{1.0f, -std::numeric_limits<float>::infinity()});
  CHECK(back.values<double>("u16") == std::vector<double>{0, 300, 65535});
}

TEST_CASE("safetensors writer lays out the header as the format's reference writer does") {
  // Byte layouts from the reference implementation's own serialization tests.
  SafetensorsFile file;
  file.put<float>("attn.0", {1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  std::vector<std::byte> expected =
      file_with_header(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
  for (float v : {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    expected.insert(expected.end(), p, p + 4);
  }
  CHECK(serialize_safetensors(file) == expected);

  SafetensorsFile misaligned;  // a 65-byte header gets 7 spaces
  misaligned.put<float>("attn0", {1, 1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  const auto out = serialize_safetensors(misaligned);
  CHECK(std::to_integer<int>(out[0]) == 72);
  const std::string header(reinterpret_cast<const char*>(out.data()) + 8, 72);
  CHECK(header == std::string(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})") + "       ");

  SafetensorsFile empty;
  CHECK(serialize_safetensors(empty) == file_with_header("{}      "));
  empty.metadata["framework"] = "pt";
  const auto with_metadata = file_with_header(R"({"__metadata__":{"framework":"pt"}}     )");
  CHECK(serialize_safetensors(empty) == with_metadata);

  // Several tensors: name order, contiguous offsets from 0.
  const auto bytes = serialize_safetensors(every_dtype_file());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  const auto header_json =
      nlohmann::ordered_json::parse(std::string(reinterpret_cast<const char*>(bytes.data()) + 8, n));
  std::uint64_t expected_begin = 0;
  std::string previous;
  for (const auto& [key, entry] : header_json.items()) {
    if (key == "__metadata__") continue;
    CHECK(previous < key);
    previous = key;
    CHECK(entry["data_offsets"][0].get<std::uint64_t>() == expected_begin);
    expected_begin = entry["data_offsets"][1].get<std::uint64_t>();
  }
  CHECK(8 + n + expected_begin == bytes.size());
}

TEST_CASE("safetensors file written by an outside implementation reads value by value") {
  const SafetensorsFile file = read_safetensors(kFixtures / "reference_all_dtypes.safetensors");
  std::ifstream in(kFixtures / "reference_all_dtypes.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  REQUIRE(expected["format_version"] == "1");
  CHECK(file.source == (kFixtures / "reference_all_dtypes.safetensors").string());
  CHECK(file.metadata == expected["metadata"].get<std::map<std::string, std::string>>());
  CHECK(file.metadata.at("unit") == "\xc2\xb5s");
  REQUIRE(file.tensors.size() == expected["tensors"].size());
  for (const auto& item : expected["tensors"].items()) {
    const std::string name = item.key();  // a plain variable: INFO captures it
    const nlohmann::json& want = item.value();
    INFO("tensor " << name);
    REQUIRE(file.contains(name));
    const TensorRecord& record = file.at(name);
    CHECK(dtype_name(record.dtype) == want["dtype"].get<std::string>());
    CHECK(record.shape == want["shape"].get<std::vector<std::int64_t>>());
    const auto& values = want["values"];
    if (is_floating(record.dtype)) {
      const auto got = file.values<double>(name);
      REQUIRE(got.size() == values.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (values[i].is_string()) {
          const std::string s = values[i];
          if (s == "nan")
            CHECK(std::isnan(got[i]));
          else
            CHECK(got[i] == (s == "inf" ? 1 : -1) * std::numeric_limits<double>::infinity());
        } else {
          CHECK(got[i] == values[i].get<double>());
          CHECK(std::signbit(got[i]) == std::signbit(values[i].get<double>()));
        }
      }
    } else if (record.dtype == DType::U64) {
      CHECK(file.values<std::uint64_t>(name) == values.get<std::vector<std::uint64_t>>());
    } else {
      CHECK(file.values<std::int64_t>(name) == values.get<std::vector<std::int64_t>>());
    }
  }
}

TEST_CASE("safetensors reader accepts what the reference accepts") {
  // Whitespace after the JSON object (the reference's padding), and before it.
  CHECK(parse_safetensors(file_with_header("{}\r \t\n"), "t").tensors.empty());
  CHECK(parse_safetensors(file_with_header("  {}"), "t").tensors.empty());
  // A zero-sized tensor, a scalar, an unknown extra field, and null metadata.
  const std::string header = R"({"z":{"dtype":"I32","shape":[2,0],"data_offsets":[0,0]},)"
                             R"("s":{"dtype":"I32","shape":[],"data_offsets":[0,4],"extra":true},"__metadata__":null})";
  const SafetensorsFile file = parse_safetensors(file_with_header(header, 4), "t");
  CHECK(file.at("z").shape == std::vector<std::int64_t>{2, 0});
  CHECK(file.at("z").bytes.empty());
  CHECK(file.at("s").shape.empty());
  CHECK(file.values<int>("s") == std::vector<int>{0});
  CHECK(file.metadata.empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed files: one case each, checked to fail with a FormatError naming the problem.

TEST_CASE("safetensors rejects a file shorter than the header length field") {
  CHECK_PARSE_ERROR(as_bytes(""), "too short");
  CHECK_PARSE_ERROR(as_bytes(std::string_view("\x02\0\0\0\0\0\0", 7)), "7 bytes long");
}

TEST_CASE("safetensors rejects a header length above 100,000,000 bytes") {
  CHECK_PARSE_ERROR(file_with_header("{}", 0, 100'000'001), "exceeds the limit of 100000000");
  CHECK_PARSE_ERROR(file_with_header("{}", 0, 0xffffff0000000000ull), "exceeds the limit");
}

TEST_CASE("safetensors rejects a header length past the end of the file") {
  CHECK_PARSE_ERROR(file_with_header("{}", 0, 3), "runs past the end of the 10-byte file");
  CHECK_PARSE_ERROR(file_with_header("", 0, 60), "header length 60");
}

TEST_CASE("safetensors rejects a header that is not UTF-8") {
  CHECK_PARSE_ERROR(file_with_header("\xff"), "not valid UTF-8 (file byte 8)");
  CHECK_PARSE_ERROR(file_with_header("{\"\xc0\xaf\":1}"), "not valid UTF-8 (file byte 10)");      // overlong '/'
  CHECK_PARSE_ERROR(file_with_header("{\"\xed\xa0\x80\":1}"), "not valid UTF-8 (file byte 10)");  // surrogate
  CHECK_PARSE_ERROR(file_with_header("{\"\xf4\x90\x80\x80\":1}"), "not valid UTF-8");             // > U+10FFFF
  CHECK_PARSE_ERROR(file_with_header("{\"\xe2\x82\":1}"), "not valid UTF-8");                     // truncated
}

TEST_CASE("safetensors rejects a header that is not JSON") {
  CHECK_PARSE_ERROR(file_with_header("{"), "not valid JSON");
  CHECK_PARSE_ERROR(file_with_header(""), "not valid JSON");
  CHECK_PARSE_ERROR(file_with_header(std::string_view("{}\0\0", 4)), "NUL byte at file byte 10");  // not padding
  CHECK_PARSE_ERROR(file_with_header(std::string_view("{}\0[", 4)), "not valid JSON");
  CHECK_PARSE_ERROR(file_with_header("{} x"), "not valid JSON");
  CHECK_PARSE_ERROR(file_with_header(R"({"a":"\ud800"})"), "not valid JSON");  // lone surrogate escape
}

TEST_CASE("safetensors rejects a header that is not an object") {
  CHECK_PARSE_ERROR(file_with_header("[]"), "header is a JSON array, not an object");
  CHECK_PARSE_ERROR(file_with_header("\"x\""), "not an object");
  CHECK_PARSE_ERROR(file_with_header("{\"w\":[]}"), "tensor 'w': entry is array, not an object");
}

TEST_CASE("safetensors rejects duplicate keys") {
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                     R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                     2),
                    "duplicate key \"w\"");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1),
                    "duplicate key \"dtype\"");
  CHECK_PARSE_ERROR(file_with_header(R"({"__metadata__":{"a":"1","a":"2"}})"), "duplicate key \"a\"");
}

TEST_CASE("safetensors rejects a tensor entry missing a field") {
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", 1),
                    "tensor 'w': entry lacks the field \"dtype\"");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", 1), "lacks the field \"shape\"");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[1]}})", 1), "lacks the field \"data_offsets\"");
}

TEST_CASE("safetensors rejects tensor entry fields of the wrong type") {
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,1]}})", 1),
                    "\"dtype\" is 5, not a string");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", 1),
                    "\"shape\" is 1, not an array");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1),
                    "\"shape\"[0] is -1, not an unsigned integer");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", 1),
                    "not an unsigned integer");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":"0,1"}})", 1),
                    "not a [begin, end] pair");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", 1),
                    "not a [begin, end] pair");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,"1"]}})", 1),
                    "\"data_offsets\"[1] is \"1\", not an unsigned integer");
}

TEST_CASE("safetensors rejects an unknown dtype") {
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16),
                    "tensor 'w': unknown dtype \"F128\"");
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4),
                    "unknown dtype \"f32\"");
}

TEST_CASE("safetensors rejects data_offsets whose end precedes their begin") {
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4),
                    "tensor 'w': data_offsets [4, 0] end before they begin");
}

TEST_CASE("safetensors rejects offsets that do not start at 0") {
  CHECK_PARSE_ERROR(file_with_header(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[4,20]}})", 20),
                    "tensor 'w': data_offsets [4, 20] do not start at 0");
}

TEST_CASE("safetensors rejects overlapping offsets") {
  CHECK_PARSE_ERROR(file_with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                     R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                                     24),
                    "tensor 'b': data_offsets [8, 24] overlap tensor 'a', which ends at 16");
  // Two tensors on the same bytes (tied weights) are refused as the reference refuses them.
  CHECK_PARSE_ERROR(file_with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                     R"("b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                                     16),
                    "overlap tensor");
}

TEST_CASE("safetensors rejects gaps between offsets") {
  CHECK_PARSE_ERROR(file_with_header(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                                     R"("b":{"dtype":"U8","shape":[8],"data_offsets":[12,20]}})",
                                     20),
                    "tensor 'b': data_offsets [12, 20] leave a gap of 4 bytes after tensor 'a'");
}

TEST_CASE("safetensors rejects trailing bytes after the last tensor") {
  CHECK_PARSE_ERROR(file_with_header(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", 9),
                    "1 trailing bytes: the tensors cover 8 bytes of a 9-byte buffer");
  CHECK_PARSE_ERROR(file_with_header("{}", 1), "1 trailing bytes");
}

TEST_CASE("safetensors rejects tensor data past the end of the file") {
  CHECK_PARSE_ERROR(file_with_header(R"({"a":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})", 14),
                    "tensor 'a' ends at buffer byte 16, past the end of the 14-byte buffer");
}

TEST_CASE("safetensors rejects a byte size that does not match shape and dtype") {
  CHECK_PARSE_ERROR(file_with_header(R"({"a":{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}})", 4),
                    "tensor 'a': data_offsets [0, 4] hold 4 bytes, but shape [2, 2] of I32 needs 16");
}

TEST_CASE("safetensors rejects shapes whose element or byte count overflows") {
  CHECK_PARSE_ERROR(
      file_with_header(R"({"a":{"dtype":"I32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16),
      "tensor 'a': shape [4294967296, 4294967296] overflows 64 bits");
  CHECK_PARSE_ERROR(
      file_with_header(R"({"a":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}})", 16),
      "overflows 64 bits in bytes");
  CHECK_PARSE_ERROR(
      file_with_header(R"({"a":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}})", 16),
      "overflows a 64-bit signed size");
  CHECK_PARSE_ERROR(
      file_with_header(R"({"a":{"dtype":"I32","shape":[18446744073709551616],"data_offsets":[0,16]}})", 16),
      "not an unsigned integer");  // beyond 64 bits altogether
}

TEST_CASE("safetensors rejects metadata that is not a string-to-string object") {
  CHECK_PARSE_ERROR(file_with_header(R"({"__metadata__":{"epoch":1}})"),
                    "\"__metadata__\" value for key \"epoch\" is 1, not a string");
  CHECK_PARSE_ERROR(file_with_header(R"({"__metadata__":["a"]})"), "\"__metadata__\" is array, not an object");
}

TEST_CASE("safetensors lookups and conversions name the key and the source") {
  SafetensorsFile file = parse_safetensors(
      file_with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4), "weights.safetensors");
  file.put<std::int32_t>("big", {1}, std::vector<std::int32_t>{300});
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const progdiff::Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string missing = message_of([&] { file.at("bias"); });
  CHECK(missing == "weights.safetensors: no tensor named 'bias'");
  CHECK_THROWS_AS(file.at("bias"), progdiff::FormatError);
  CHECK(message_of([&] { file.values<int>("w"); }).find("tensor 'w' holds F32") != std::string::npos);
  CHECK(message_of([&] { file.values<std::int8_t>("big"); }).find("element 0 (300)") != std::string::npos);
  CHECK_THROWS_AS(file.put<float>("x", {2, 2}, std::vector<float>{1, 2, 3}), progdiff::ShapeError);
  CHECK_THROWS_AS(file.put<float>("__metadata__", {1}, std::vector<float>{1}), progdiff::FormatError);
  const float one[] = {1.0f};
  CHECK_THROWS_AS(file.put_as("x", {1}, one, DType::I32), progdiff::ConfigError);
}

TEST_CASE("safetensors writer refuses records it cannot write") {
  SafetensorsFile file;
  file.source = "out.safetensors";
  file.tensors["__metadata__"] = {DType::U8, {1}, {std::byte{1}}};
  CHECK_THROWS_AS(serialize_safetensors(file), progdiff::FormatError);
  file.tensors.clear();
  file.tensors["w"] = {DType::F32, {2}, {std::byte{1}}};  // 1 byte for 2 floats
  CHECK_THROWS_AS(serialize_safetensors(file), progdiff::ShapeError);
  file.tensors.clear();
  file.metadata["k"] = "\xff";
  CHECK_THROWS_WITH_AS(serialize_safetensors(file),
                       "out.safetensors: metadata value for key 'k' is not valid UTF-8 (byte 0)",
                       progdiff::FormatError);
}

TEST_CASE("read_safetensors reports a file it cannot open as an IoError naming the path") {
  ScratchDirectory dir;
  const fs::path missing = dir.path / "absent.safetensors";
  try {
    read_safetensors(missing);
    FAIL("no exception");
  } catch (const progdiff::IoError& e) {
    CHECK(std::string(e.what()).find(missing.string()) != std::string::npos);
  }
  // A malformed file on disk is a FormatError that names it.
  const fs::path bad = dir.path / "bad.safetensors";
  std::ofstream(bad, std::ios::binary) << std::string("\x02\0\0\0\0\0\0\0{}x", 11);
  try {
    read_safetensors(bad);
    FAIL("no exception");
  } catch (const progdiff::FormatError& e) {
    CHECK(std::string(e.what()).find(bad.string() + ": 1 trailing bytes") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Atomic replacement

TEST_CASE("write_safetensors replaces a file and leaves no temporary behind") {
  ScratchDirectory dir;
  const fs::path target = dir.path / "model.safetensors";
  std::ofstream(target) << "old contents";
  const SafetensorsFile file = every_dtype_file();
  write_safetensors(target, file);
  CHECK(read_all(target) == serialize_safetensors(file));
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  const SafetensorsFile back = read_safetensors(target);
  for (const auto& [name, record] : file.tensors) CHECK(back.at(name).bytes == record.bytes);
}

TEST_CASE("atomic write failures leave the old file intact and no temporary") {
  ScratchDirectory dir;
  const fs::path target = dir.path / "model.safetensors";
  SafetensorsFile old_file;
  old_file.put<float>("w", {2}, std::vector<float>{1, 2});
  write_safetensors(target, old_file);
  const std::vector<std::byte> old_bytes = read_all(target);

  SUBCASE("a value that cannot be serialized") {
    SafetensorsFile bad = old_file;
    bad.metadata["note"] = "\xc3";  // truncated UTF-8
    CHECK_THROWS_AS(write_safetensors(target, bad), progdiff::FormatError);
  }
  SUBCASE("an error part way through the write") {
    try {
      AtomicFile out(target);
      out.write(as_bytes("partial"));
      CHECK(fs::exists(out.temporary()));
      throw std::runtime_error("producer failed");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "producer failed");
    }
  }
  SUBCASE("a rename that the file system refuses") {
    const fs::path blocked = dir.path / "blocked";
    fs::create_directories(blocked / "child");  // a non-empty directory cannot be replaced by a file
    try {
      write_safetensors(blocked, old_file);
      FAIL("no exception");
    } catch (const progdiff::IoError& e) {
      const std::string message = e.what();
      INFO(message);
      CHECK(message.find("cannot rename") != std::string::npos);
      CHECK(message.find(blocked.string()) != std::string::npos);
      CHECK(message.find(std::strerror(EISDIR)) != std::string::npos);
    }
    CHECK(fs::is_directory(blocked / "child"));
    fs::remove_all(blocked);
  }
  SUBCASE("a directory that does not exist") {
    const fs::path nowhere = dir.path / "missing" / "model.safetensors";
    try {
      write_safetensors(nowhere, old_file);
      FAIL("no exception");
    } catch (const progdiff::IoError& e) {
      const std::string message = e.what();
      CHECK(message.find((dir.path / "missing").string()) != std::string::npos);
      CHECK(message.find(std::strerror(ENOENT)) != std::string::npos);
    }
  }
  SUBCASE("a read-only directory") {
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
    if (::geteuid() == 0) {
      MESSAGE("running as root, which may write into read-only directories: checking only that nothing broke");
      fs::permissions(dir.path, fs::perms::owner_all, fs::perm_options::replace);
    } else {
      CHECK_THROWS_AS(write_safetensors(target, every_dtype_file()), progdiff::IoError);
      fs::permissions(dir.path, fs::perms::owner_all, fs::perm_options::replace);
    }
  }
  CHECK(read_all(target) == old_bytes);
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
}

// ---------------------------------------------------------------------------------------------
// Tensors

TEST_CASE("Tensor values move in and out of a SafetensorsFile") {
  using progdiff::Shape;
  using progdiff::Tensor;
  using progdiff::backend::Cpu;
  SafetensorsFile file;
  file.source = "ckpt.safetensors";
  const auto t = Tensor<float, Cpu>::from_host(Shape{2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  put_tensor(file, "conv.weight", t);
  CHECK(file.at("conv.weight").dtype == DType::F32);
  CHECK(file.at("conv.weight").shape == std::vector<std::int64_t>{2, 3});

  const auto back = to_tensor<float, Cpu>(file, "conv.weight", Shape{2, 3});
  CHECK(back.shape() == Shape{2, 3});
  CHECK(back.to_host() == std::vector<float>{1, 2, 3, 4, 5, 6});
  const auto widened = to_tensor<double, Cpu>(file, "conv.weight");
  CHECK(widened.to_host() == std::vector<double>{1, 2, 3, 4, 5, 6});

  try {
    to_tensor<float, Cpu>(file, "conv.weight", Shape{3, 2});
    FAIL("no exception");
  } catch (const progdiff::ShapeError& e) {
    const std::string message = e.what();
    CHECK(message.find("ckpt.safetensors: tensor 'conv.weight'") != std::string::npos);
    CHECK(message.find("[2, 3]") != std::string::npos);
    CHECK(message.find("[3, 2]") != std::string::npos);
  }
  CHECK_THROWS_AS((to_tensor<float, Cpu>(file, "conv.bias")), progdiff::FormatError);
  file.tensors["deep"] = {DType::U8, {1, 1, 1, 1, 1, 1, 1}, {std::byte{0}}};
  CHECK_THROWS_AS((to_tensor<float, Cpu>(file, "deep")), progdiff::ShapeError);

  const float halves[] = {0.5f, -1.0f};
  file.put_as("half", {2}, halves, DType::F16);
  CHECK(to_tensor<float, Cpu>(file, "half", Shape{2}).to_host() == std::vector<float>{0.5f, -1.0f});
}

}  // namespace progdiff_tests_safetensors
#undef CHECK_PARSE_ERROR
