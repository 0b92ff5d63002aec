#pragma once
// A batch of images as one picture: the layout of torchvision.utils.make_grid (images in rows
// of `columns`, `padding` pixels of background around and between them) and the pixel mapping
// of torchvision.utils.save_image(normalize=True, value_range=(-1, 1)):
//   byte = floor(clamp((v + 1) / 2, 0, 1) * 255 + 0.5)
// Images: a tensor [N, C, H, W] with C = 1 (gray, drawn as equal R, G, B) or C = 3 (RGB), values
// in [-1, 1] (the range the data loaders and samplers use); values outside are clipped.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/io/png.hpp"

namespace progdiff::io {

struct GridLayout {
  std::int64_t columns = 8;  // images per row (make_grid's nrow); fewer when the batch is smaller
  int padding = 2;           // pixels around and between images
  Rgb background{0, 0, 0};   // colour of the padding (make_grid's pad_value 0)
};

/// The byte of a value in [-1, 1] (save_image's rounding; NaN maps to 0).
inline std::uint8_t unit_range_to_byte(double v) {
  if (!(v == v)) return 0;
  const double unit = std::clamp((v + 1.0) / 2.0, 0.0, 1.0);
  return static_cast<std::uint8_t>(std::floor(unit * 255.0 + 0.5));
}

/// The grid picture of a batch [N, C, H, W]; ShapeError names the shape it cannot draw.
template <class T, class B>
Image image_grid(const Tensor<T, B>& images, const GridLayout& layout = {}) {
  const Shape& s = images.shape();
  if (s.rank() != 4 || s[0] < 1 || (s[1] != 1 && s[1] != 3) || s[2] < 1 || s[3] < 1)
    throw ShapeError("image_grid: expected images [N, C, H, W] with N >= 1 and C = 1 or 3, got " + s.str());
  require(layout.columns >= 1, "image_grid: columns must be >= 1, got " + std::to_string(layout.columns));
  require(layout.padding >= 0, "image_grid: padding must be >= 0, got " + std::to_string(layout.padding));
  const std::int64_t n = s[0], c = s[1], h = s[2], w = s[3];
  const std::int64_t cols = std::min(layout.columns, n), rows = (n + cols - 1) / cols;
  const std::int64_t p = layout.padding;
  const std::int64_t width = cols * (w + p) + p, height = rows * (h + p) + p;
  require(width <= (1 << 24) && height <= (1 << 24),
          "image_grid: a grid of " + std::to_string(width) + " x " + std::to_string(height) + " pixels is too large");
  Image grid(static_cast<int>(width), static_cast<int>(height), layout.background);
  const std::vector<T> v = images.to_host();
  const std::int64_t plane = h * w;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t x0 = (i % cols) * (w + p) + p, y0 = (i / cols) * (h + p) + p;
    const T* img = v.data() + i * c * plane;
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) {
        const std::int64_t at = y * w + x;
        const std::uint8_t r = unit_range_to_byte(static_cast<double>(img[at]));
        const Rgb px = c == 1 ? Rgb{r, r, r}
                              : Rgb{r, unit_range_to_byte(static_cast<double>(img[plane + at])),
                                    unit_range_to_byte(static_cast<double>(img[2 * plane + at]))};
        grid.set(static_cast<int>(x0 + x), static_cast<int>(y0 + y), px);
      }
  }
  return grid;
}

/// Writes the grid of a batch as a PNG file (IoError names the path on failure).
template <class T, class B>
void write_image_grid(const std::filesystem::path& path, const Tensor<T, B>& images, const GridLayout& layout = {}) {
  write_png(path.string(), image_grid(images, layout));
}

}  // namespace progdiff::io
