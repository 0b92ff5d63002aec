// Data loading: Fashion-MNIST (the real files when installed), malformed IDX files, the shuffling
// batch iterator, the PNG decoder, the .npy reader, image folders and tensor files.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "data_support.hpp"
#include "progdiff/data/data.hpp"
#include "progdiff/io/png.hpp"
#include "progdiff/io/safetensors.hpp"

namespace progdiff_tests_data {

using namespace progdiff;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(PROGDIFF_FIXTURES_DIR) + "/train/";

// A fresh empty directory under the system's temporary directory.
fs::path scratch_directory(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("progdiff_data_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dims, std::size_t values, std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  for (std::size_t i = 0; i < values; ++i) b.push_back(static_cast<std::uint8_t>(i % 10));
  return b;
}

void write_gzip(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A small labelled dataset whose pixel values encode (image, channel, row, column).
data::ImageDataset coded_dataset(std::int64_t count, std::int64_t c, std::int64_t h, std::int64_t w) {
  data::ImageDataset ds;
  ds.count = count, ds.channels = c, ds.height = h, ds.width = w;
  for (std::int64_t i = 0; i < count * c * h * w; ++i) ds.pixels.push_back(static_cast<float>(i));
  for (std::int64_t i = 0; i < count; ++i) ds.labels.push_back(i % 3);
  return ds;
}

}  // namespace

TEST_CASE("Fashion-MNIST: the installed files give the known counts, labels and pixel range" *
          test_data::fashion_mnist_required()) {
  const fs::path dir = data::kFashionMnistDirectory;
  const data::ImageDataset train = data::load_fashion_mnist(data::Split::Train);
  const data::ImageDataset test = data::load_fashion_mnist(data::Split::Test);
  CHECK(train.count == 60000);
  CHECK(test.count == 10000);
  CHECK(train.channels == 1);
  CHECK(train.height == 32);
  CHECK(train.width == 32);
  std::vector<int> hist_train(10), hist_test(10);
  for (auto l : train.labels) ++hist_train[static_cast<std::size_t>(l)];
  for (auto l : test.labels) ++hist_test[static_cast<std::size_t>(l)];
  for (int c = 0; c < 10; ++c) {
    CHECK(hist_train[static_cast<std::size_t>(c)] == 6000);
    CHECK(hist_test[static_cast<std::size_t>(c)] == 1000);
  }
  CHECK(train.labels[0] == 9);  // the first training image is an ankle boot
  CHECK(test.labels[0] == 9);
  const auto [lo, hi] = std::minmax_element(train.pixels.begin(), train.pixels.end());
  CHECK(*lo == -1.0f);
  CHECK(*hi == 1.0f);
  // The 2-pixel border is background; the interior is the raw byte scaled by 1 / 127.5 - 1.
  const data::IdxArray raw = data::read_idx((dir / "train-images-idx3-ubyte.gz").string(), 3);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t y = 0; y < 32; ++y)
      for (std::int64_t x = 0; x < 32; ++x) {
        const float got = train.pixels[static_cast<std::size_t>((i * 32 + y) * 32 + x)];
        const bool border = y < 2 || y >= 30 || x < 2 || x >= 30;
        const float want =
            border ? -1.0f
                   : static_cast<float>(raw.values[static_cast<std::size_t>((i * 28 + y - 2) * 28 + x - 2)]) / 127.5f -
                         1.0f;
        REQUIRE(got == want);
      }
  // A batch is a [N, 1, 32, 32] tensor.
  data::ShufflingBatches batches(test, {16, 1});
  const auto b = batches.next();
  CHECK(b.images.shape() == Shape{16, 1, 32, 32});
  CHECK(b.labels.size() == 16);
  const auto partial = data::load_fashion_mnist(data::Split::Test, dir, 100, 28);
  CHECK(partial.count == 100);
  CHECK(partial.height == 28);
  CHECK(std::equal(partial.labels.begin(), partial.labels.end(), test.labels.begin()));
  // The spread EDM's sigma_data takes from the data: tools/fixtures/fashion_pixel_statistics.py
  // over the same padded [-1, 1] pixels (float32 scaling, float64 sums).
  const data::PixelStatistics spread = data::pixel_standard_deviation(train);
  CHECK(spread.pixels == 60000 * 32 * 32);
  CHECK(spread.mean == doctest::Approx(-0.5620003290503703).epsilon(1e-9));
  CHECK(spread.standard_deviation == doctest::Approx(0.6636227560069806).epsilon(1e-9));
  CHECK(spread.root_mean_square == doctest::Approx(0.8696203379308841).epsilon(1e-9));
}

TEST_CASE("pixel statistics: closed forms, a large offset, and an empty dataset refused") {
  // Pixels 0 .. n - 1: mean (n - 1) / 2, population variance (n^2 - 1) / 12.
  data::ImageDataset ds = coded_dataset(3, 2, 4, 5);
  const double n = 3.0 * 2 * 4 * 5;
  auto s = data::pixel_standard_deviation(ds);
  CHECK(s.pixels == 120);
  CHECK(s.mean == doctest::Approx((n - 1) / 2).epsilon(1e-14));
  CHECK(s.standard_deviation == doctest::Approx(std::sqrt((n * n - 1) / 12)).epsilon(1e-14));
  // Their mean square: (n - 1)(2n - 1) / 6.
  CHECK(s.root_mean_square == doctest::Approx(std::sqrt((n - 1) * (2 * n - 1) / 6)).epsilon(1e-14));
  // A mean of 10^4 must not cancel the spread (a one-pass sum of squares in float would).
  for (float& v : ds.pixels) v += 10000.0f;
  s = data::pixel_standard_deviation(ds);
  CHECK(s.mean == doctest::Approx(10000 + (n - 1) / 2).epsilon(1e-14));
  CHECK(s.standard_deviation == doctest::Approx(std::sqrt((n * n - 1) / 12)).epsilon(1e-12));
  data::ImageDataset empty;
  empty.height = empty.width = 32;
  CHECK_THROWS_WITH_AS(data::pixel_standard_deviation(empty), doctest::Contains("holds no images"), ConfigError);
}

TEST_CASE("Fashion-MNIST: missing and malformed files name the file and the problem") {
  const fs::path dir = scratch_directory("fmnist");
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Train, dir),
                       doctest::Contains("train-images-idx3-ubyte.gz does not exist"), IoError);
  const fs::path images = dir / "t10k-images-idx3-ubyte.gz", labels = dir / "t10k-labels-idx1-ubyte.gz";
  write_gzip(labels, idx_bytes({4}, 4));

  write_gzip(images, idx_bytes({4, 28, 28}, 4 * 28 * 28));
  CHECK(data::load_fashion_mnist(data::Split::Test, dir).count == 4);

  auto truncated = idx_bytes({4, 28, 28}, 4 * 28 * 28);
  truncated.resize(truncated.size() - 100);
  write_gzip(images, truncated);
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir),
                       doctest::Contains((images.string() + ": header at offset 4 promises 3136 elements").c_str()),
                       FormatError);

  auto magic = idx_bytes({4, 28, 28}, 4 * 28 * 28);
  magic[0] = 8;
  write_gzip(images, magic);
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir),
                       doctest::Contains("magic number must start with two zero bytes"), FormatError);
  write_gzip(images, idx_bytes({4, 28, 28}, 4 * 28 * 28, 0x0D));
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir), doctest::Contains("element type 0x0d"),
                       FormatError);

  write_gzip(images, idx_bytes({4, 27, 28}, 4 * 27 * 28));
  CHECK_THROWS_WITH_AS(
      data::load_fashion_mnist(data::Split::Test, dir),
      doctest::Contains("expected images of shape [N, 28, 28], the header gives 3 dimensions [4, 27, 28]"),
      FormatError);
  write_gzip(images, idx_bytes({5, 28, 28}, 5 * 28 * 28));
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir), doctest::Contains("4 labels for 5 images"),
                       FormatError);
  write_gzip(images, idx_bytes({4, 28, 28}, 4 * 28 * 28));
  auto bad_label = idx_bytes({4}, 4);
  bad_label.back() = 10;
  write_gzip(labels, bad_label);
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir), doctest::Contains("label 10 of item 3"),
                       FormatError);

  // A gzip stream cut short, and one whose compressed bytes are damaged.
  write_gzip(labels, idx_bytes({4}, 4));
  write_gzip(images, idx_bytes({4, 28, 28}, 4 * 28 * 28));
  auto gz = read_bytes(images);
  auto cut = gz;
  cut.resize(gz.size() / 2);
  write_bytes(images, cut);
  const std::string bad_stream = images.string() + ": corrupt or truncated compressed data";
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir), doctest::Contains(bad_stream.c_str()),
                       FormatError);
  auto damaged = gz;
  for (std::size_t i = 12; i < 40 && i < damaged.size(); ++i) damaged[i] ^= 0x5a;
  write_bytes(images, damaged);
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::Split::Test, dir), doctest::Contains(bad_stream.c_str()),
                       FormatError);
  // An uncompressed file under the same name reads as it is (zlib passes plain data through).
  write_bytes(images, idx_bytes({4, 28, 28}, 4 * 28 * 28));
  CHECK(data::load_fashion_mnist(data::Split::Test, dir).count == 4);
  fs::remove_all(dir);
}

TEST_CASE("IDX: dimensions whose product wraps 64 bits are refused") {
  // 2^31 * 4 * 2^31 = 2^64 wraps to 0, which an empty data section would otherwise match.
  CHECK_THROWS_WITH_AS(data::parse_idx(idx_bytes({1u << 31, 4, 1u << 31}, 0), "mem"), doctest::Contains("too large"),
                       FormatError);
}

TEST_CASE("shuffling batches: a permutation per epoch, deterministic per seed, flips from Philox") {
  const auto ds = coded_dataset(10, 2, 3, 4);
  data::ShufflingBatches a(ds, {3, 42});
  data::ShufflingBatches b(ds, {3, 42});
  data::ShufflingBatches other(ds, {3, 43});
  std::vector<std::int64_t> epoch0, epoch1, epoch_other;
  int flips = 0, checked = 0;
  for (int k = 0; k < 6; ++k) {  // 3 full batches per epoch (drop_last), two epochs
    const auto x = a.next<double>();
    const auto y = b.next<double>();
    CHECK(x.indices == y.indices);
    CHECK(x.images.to_host() == y.images.to_host());
    auto& seen = k < 3 ? epoch0 : epoch1;
    CHECK(x.epoch == (k < 3 ? 0 : 1));
    seen.insert(seen.end(), x.indices.begin(), x.indices.end());
    const auto o = other.next();
    epoch_other.insert(epoch_other.end(), o.indices.begin(), o.indices.end());
    const auto host = x.images.to_host();
    for (std::size_t n = 0; n < x.indices.size(); ++n) {
      const std::int64_t i = x.indices[n];
      CHECK(x.labels[n] == i % 3);
      const bool flip = a.flipped(i);
      flips += flip;
      for (std::int64_t p = 0; p < 2 * 3; ++p)
        for (std::int64_t col = 0; col < 4; ++col) {
          const double want = ds.pixels[static_cast<std::size_t>((i * 6 + p) * 4 + (flip ? 3 - col : col))];
          REQUIRE(host[static_cast<std::size_t>((static_cast<std::int64_t>(n) * 6 + p) * 4 + col)] == want);
          ++checked;
        }
    }
  }
  CHECK(checked == 18 * 24);
  CHECK(flips > 0);
  CHECK(flips < 18);
  std::set<std::int64_t> distinct(epoch0.begin(), epoch0.end());
  CHECK(distinct.size() == 9);  // nine different images of ten in the first epoch's three batches
  CHECK(epoch0 != epoch1);      // a new order each epoch
  CHECK(std::vector<std::int64_t>(epoch_other.begin(), epoch_other.begin() + 9) != epoch0);  // another seed
  // Over many samples about half are flipped.
  const auto big = coded_dataset(4000, 1, 1, 2);
  data::ShufflingBatches many(big, {4000, 1});
  (void)many.next();
  int flipped = 0;
  for (std::int64_t i = 0; i < 4000; ++i) flipped += many.flipped(i);
  CHECK(std::abs(flipped - 2000) < 160);  // 5 standard deviations
}

TEST_CASE("shuffling batches: a saved position resumes the same sequence") {
  const auto ds = coded_dataset(7, 1, 2, 2);
  data::ShufflingBatches run(ds, {2, 9, true, true, false});
  std::map<std::string, std::int64_t> counters;
  for (int k = 0; k < 5; ++k) (void)run.next();  // into the second epoch (4 batches per epoch, the last short)
  run.save_position(counters, "data");
  CHECK(counters.at("data.epoch") == 1);
  data::ShufflingBatches resumed(ds, {2, 9, true, true, false});
  resumed.restore_position(counters, "data");
  for (int k = 0; k < 6; ++k) {
    const auto x = run.next(), y = resumed.next();
    CHECK(x.indices == y.indices);
    CHECK(x.images.to_host() == y.images.to_host());
    CHECK(x.epoch == y.epoch);
  }
  // The last batch of an epoch is short without drop_last.
  data::ShufflingBatches short_last(ds, {3, 1, false, false, false});
  CHECK(short_last.next().indices == std::vector<std::int64_t>{0, 1, 2});
  (void)short_last.next();
  CHECK(short_last.next().indices == std::vector<std::int64_t>{6});
  data::ShufflingBatches wrong_seed(ds, {2, 10});
  CHECK_THROWS_WITH_AS(wrong_seed.restore_position(counters, "data"), doctest::Contains("seed 9"), ConfigError);
  CHECK_THROWS_AS(wrong_seed.restore_position(counters, "missing"), ConfigError);
  CHECK_THROWS_AS(data::ShufflingBatches(ds, {8, 0}), ConfigError);
}

TEST_CASE("PNG decoder: every filter type, gray and RGB, and Pillow's output") {
  for (const std::string name : {"png_gray_filters", "png_rgb_filters", "png_gray_pillow"}) {
    INFO(name);
    const auto img = io::read_png(kFixtures + name + ".png");
    const auto want = data::read_npy(kFixtures + name + ".npy");
    REQUIRE(want.descr == "|u1");
    CHECK(img.height == want.shape[0]);
    CHECK(img.width == want.shape[1]);
    CHECK(img.channels == (want.shape.size() == 3 ? want.shape[2] : 1));
    REQUIRE(img.pixels.size() == want.values.size());
    for (std::size_t i = 0; i < img.pixels.size(); ++i) REQUIRE(img.pixels[i] == want.values[i]);
  }
  // The library's own encoder round-trips.
  io::Image picture(5, 3);
  picture.set(1, 2, {10, 200, 30});
  const auto decoded = io::decode_png(io::encode_png(picture), "mem");
  CHECK(decoded.channels == 3);
  CHECK(decoded.pixels[(2 * 5 + 1) * 3 + 1] == 200);
  CHECK(decoded.pixels[0] == 255);
}

TEST_CASE("PNG decoder: malformed files raise FormatError naming the file and why") {
  const auto good = read_bytes(kFixtures + "png_gray_filters.png");
  auto with_crc = [](std::vector<std::uint8_t> b, std::size_t chunk_at) {
    const std::uint32_t length =
        (b[chunk_at] << 24) | (b[chunk_at + 1] << 16) | (b[chunk_at + 2] << 8) | b[chunk_at + 3];
    const auto crc = static_cast<std::uint32_t>(crc32(0L, &b[chunk_at + 4], length + 4));
    for (int k = 0; k < 4; ++k) b[chunk_at + 8 + length + k] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
    return b;
  };
  auto ihdr_with = [&](std::size_t field, std::uint8_t value) {
    auto b = good;
    b[8 + 8 + field] = value;
    return with_crc(b, 8);
  };
  CHECK_THROWS_WITH_AS(io::decode_png({1, 2, 3}, "x.png"), doctest::Contains("x.png: missing the PNG signature"),
                       FormatError);
  // Headers that promise more data than the file holds: interlaced, RGBA, 16-bit, one row more.
  for (const auto& [field, value] : std::vector<std::pair<std::size_t, std::uint8_t>>{{12, 1}, {9, 6}, {8, 16}, {7, 8}})
    CHECK_THROWS_WITH_AS(io::decode_png(ihdr_with(field, value), "x.png"), doctest::Contains("PNG x.png: "),
                         FormatError);
  auto bad_crc = good;
  bad_crc[8 + 8 + 2] ^= 1;
  CHECK_THROWS_WITH_AS(io::decode_png(bad_crc, "x.png"), doctest::Contains("CRC error"), FormatError);
  auto cut = good;
  cut.resize(good.size() - 20);
  CHECK_THROWS_AS(io::decode_png(cut, "x.png"), FormatError);
  // A header claiming about 2^17 rows: refused before anything that large is allocated.
  auto huge = good;
  huge[8 + 8 + 5] = 0x02;
  CHECK_THROWS_WITH_AS(io::decode_png(with_crc(huge, 8), "x.png"), doctest::Contains("larger than 65536"), FormatError);
  // An unknown filter type in the first row: rebuild the IDAT stream with filter 7.
  const auto img = io::decode_png(good, "x.png");
  std::vector<std::uint8_t> raw;
  for (int y = 0; y < img.height; ++y) {
    raw.push_back(y == 0 ? 7 : 0);
    raw.insert(raw.end(), img.pixels.begin() + y * img.width, img.pixels.begin() + (y + 1) * img.width);
  }
  std::vector<std::uint8_t> z(compressBound(raw.size()));
  uLongf zlen = z.size();
  REQUIRE(compress(z.data(), &zlen, raw.data(), raw.size()) == Z_OK);
  z.resize(zlen);
  std::vector<std::uint8_t> png(good.begin(), good.begin() + 8 + 25);  // signature and IHDR
  auto put_chunk = [&](const char* type, const std::vector<std::uint8_t>& d) {
    const std::size_t at = png.size();
    for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<std::uint8_t>(d.size() >> s));
    png.insert(png.end(), type, type + 4);
    png.insert(png.end(), d.begin(), d.end());
    png.insert(png.end(), 4, 0);
    png = with_crc(png, at);
  };
  put_chunk("IDAT", z);
  put_chunk("IEND", {});
  CHECK_THROWS_WITH_AS(io::decode_png(png, "x.png"), doctest::Contains("filter"), FormatError);
  CHECK_THROWS_AS(io::read_png("/nonexistent/x.png"), IoError);
}

TEST_CASE("NPY reader: numpy's float32, float64 and uint8 files; refusals") {
  for (const std::string name : {"npy_f4", "npy_f8"}) {
    const auto a = data::read_npy(kFixtures + name + ".npy");
    CHECK(a.shape == std::vector<std::int64_t>{2, 3, 4});
    for (std::size_t i = 0; i < 24; ++i) CHECK(a.values[i] == static_cast<double>(i) / 8);
  }
  const auto u = data::read_npy(kFixtures + "npy_u1.npy");
  CHECK(u.descr == "|u1");
  CHECK(u.values[31] == 31);
  CHECK_THROWS_WITH_AS(data::read_npy(kFixtures + "npy_fortran.npy"), doctest::Contains("'fortran_order' is True"),
                       FormatError);
  auto bytes = read_bytes(kFixtures + "npy_f4.npy");
  auto big_endian = bytes;
  const std::string text(big_endian.begin(), big_endian.end());
  big_endian[text.find("<f4")] = '>';
  CHECK_THROWS_WITH_AS(data::parse_npy(big_endian, "a.npy"), doctest::Contains("element type '>f4' is not supported"),
                       FormatError);
  auto truncated = bytes;
  truncated.pop_back();
  CHECK_THROWS_WITH_AS(data::parse_npy(truncated, "a.npy"), doctest::Contains("needs 96 data bytes, the file holds 95"),
                       FormatError);
  auto magic = bytes;
  magic[1] = 'X';
  CHECK_THROWS_WITH_AS(data::parse_npy(magic, "a.npy"), doctest::Contains("a.npy: missing the magic"), FormatError);
  auto no_shape = bytes;
  no_shape[text.find("'shape'") + 1] = 'S';
  CHECK_THROWS_WITH_AS(data::parse_npy(no_shape, "a.npy"), doctest::Contains("lacks the key 'shape'"), FormatError);
  auto long_header = bytes;
  long_header[8] = 0xff;
  long_header[9] = 0xff;
  CHECK_THROWS_AS(data::parse_npy(long_header, "a.npy"), FormatError);
  // Version 2.0: a 4-byte header length.
  std::vector<std::uint8_t> v2(bytes.begin(), bytes.begin() + 8);
  v2[6] = 2;
  const std::size_t hl = bytes[8] | (bytes[9] << 8);
  v2.push_back(static_cast<std::uint8_t>(hl));
  v2.push_back(static_cast<std::uint8_t>(hl >> 8));
  v2.push_back(0);
  v2.push_back(0);
  v2.insert(v2.end(), bytes.begin() + 10, bytes.end());
  CHECK(data::parse_npy(v2, "v2.npy").values[5] == 5.0 / 8);
}

TEST_CASE("image folder and tensor files load as datasets in [-1, 1]") {
  const fs::path dir = scratch_directory("folder");
  fs::create_directories(dir / "cats");
  fs::create_directories(dir / "dogs");
  io::Image white(4, 3), black(4, 3, {0, 0, 0});
  auto save = [](const fs::path& p, const io::Image& img) { write_bytes(p, io::encode_png(img)); };
  save(dir / "cats" / "b.png", white);
  save(dir / "cats" / "a.png", black);
  save(dir / "dogs" / "c.PNG", white);
  write_bytes(dir / "dogs" / "notes.txt", {'h', 'i'});
  const auto ds = data::load_image_folder(dir);
  CHECK(ds.count == 3);
  CHECK(ds.channels == 3);
  CHECK(ds.height == 3);
  CHECK(ds.width == 4);
  CHECK(ds.labels == std::vector<std::int64_t>{0, 0, 1});
  CHECK(ds.pixels[0] == -1.0f);  // a.png, black, comes first
  CHECK(ds.pixels[36] == 1.0f);  // b.png, white
  save(dir / "dogs" / "d.png", io::Image(5, 3));
  CHECK_THROWS_WITH_AS(data::load_image_folder(dir), doctest::Contains("d.png is 5x3 with 3 channel(s)"), FormatError);
  CHECK_THROWS_AS(data::load_image_folder(dir / "none"), IoError);

  const auto u8 = data::load_tensor_file(kFixtures + "npy_u1.npy");
  CHECK(u8.count == 2);
  CHECK(u8.channels == 1);
  CHECK(u8.height == 4);
  CHECK(u8.pixels[31] == doctest::Approx(31 / 127.5 - 1));
  io::SafetensorsFile f;
  f.put<float>("images", {2, 1, 2, 2}, std::vector<float>{0, .5f, -.5f, 1, 1, 1, 1, 1});
  f.put<std::int64_t>("labels", {2}, std::vector<std::int64_t>{3, 4});
  io::write_safetensors(dir / "t.safetensors", f);
  const auto st = data::load_tensor_file(dir / "t.safetensors");
  CHECK(st.labels == std::vector<std::int64_t>{3, 4});
  CHECK(st.pixels[1] == 0.5f);
  f.put<float>("other", {1, 2, 2}, std::vector<float>{0, 0, 0, 0});
  io::write_safetensors(dir / "t2.safetensors", f);
  CHECK_THROWS_WITH_AS(data::load_tensor_file(dir / "t2.safetensors"), doctest::Contains("several tensors"),
                       ConfigError);
  CHECK(data::load_tensor_file(dir / "t2.safetensors", "images").count == 2);
  CHECK_THROWS_WITH_AS(data::load_tensor_file(kFixtures + "png_gray_filters.npy"),
                       doctest::Contains("expected images of shape [N, H, W] or [N, C, H, W], got [7, 11]"),
                       FormatError);
  fs::remove_all(dir);
}

}  // namespace progdiff_tests_data
