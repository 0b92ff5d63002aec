// The Backend concept is the whole contract: a back end written from scratch to it, sharing
// nothing with backend::Cpu but the element formulas of backend/math (the part every back end
// shares by design), trains a U-Net through the library's trainer and samples it with DDIM.
// Its results are compared with the CPU back end's, so a kernel the library calls but the
// concept omits fails to compile here, and a kernel the concept describes wrongly fails the
// comparison.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "progdiff/backend/backend.hpp"
#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/backend/math/activation.hpp"
#include "progdiff/backend/math/adam.hpp"
#include "progdiff/backend/math/embedding.hpp"
#include "progdiff/backend/math/group_norm.hpp"
#include "progdiff/backend/math/philox.hpp"
#include "progdiff/backend/math/softmax.hpp"
#include "progdiff/model/model.hpp"
#include "progdiff/sample/ddim.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/train/stage1.hpp"
#include "progdiff/unet/unet.hpp"
#include "train_support.hpp"

namespace progdiff_tests_backend_contract {

using namespace progdiff;

namespace {

/// Plain loops over host memory, one function per kernel of the concept, written from the
/// concept's comments; no threads, no caches, no vector code.
template <bool WithUpdates = true>
struct PlainBackend {
  static constexpr const char* name() { return "plain"; }
  static constexpr bool host_accessible = true;
  static constexpr int sampler_terms = 6;

  // Memory.
  template <class T>
  static T* allocate(std::size_t n) {
    return new T[n == 0 ? 1 : n]();
  }
  template <class T>
  static void deallocate(T* p, std::size_t) {
    delete[] p;
  }
  template <class T>
  static void copy_from_host(T* dst, const T* src, std::size_t n) {
    std::copy(src, src + n, dst);
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, std::size_t n) {
    std::copy(src, src + n, dst);
  }
  template <class T>
  static void copy(T* dst, const T* src, std::size_t n) {
    std::copy(src, src + n, dst);
  }
  template <class T>
  static void fill(T* p, std::size_t n, T value) {
    std::fill(p, p + n, value);
  }
  template <class T>
  static void copy_2d(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) dst[r * ldd + c] = src[r * lds + c];
  }
  template <class T>
  static void add_2d(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) dst[r * ldd + c] += src[r * lds + c];
  }
  static void synchronize() {}

  // C = alpha op(A) op(B) + beta C, row-major; beta = 0 ignores what C held.
  template <class T>
  static void gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                   std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (std::int64_t p = 0; p < k; ++p) {
          const T av = ta == Trans::No ? a[i * lda + p] : a[p * lda + i];
          const T bv = tb == Trans::No ? b[p * ldb + j] : b[j * ldb + p];
          s += static_cast<double>(av) * static_cast<double>(bv);
        }
        const double old = beta == T(0) ? 0.0 : static_cast<double>(beta) * static_cast<double>(c[i * ldc + j]);
        c[i * ldc + j] = static_cast<T>(static_cast<double>(alpha) * s + old);
      }
  }
  template <class T>
  static void gemm_strided_batched(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                                   const T* a, std::int64_t lda, std::int64_t stride_a, const T* b, std::int64_t ldb,
                                   std::int64_t stride_b, T beta, T* c, std::int64_t ldc, std::int64_t stride_c,
                                   std::int64_t batch) {
    for (std::int64_t q = 0; q < batch; ++q)
      gemm(ta, tb, m, n, k, alpha, a + q * stride_a, lda, b + q * stride_b, ldb, beta, c + q * stride_c, ldc);
  }

  // Element-wise kernels and reductions.
  template <class T>
  static void axpy(std::size_t n, T alpha, const T* x, T* y) {
    for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  }
  template <class T>
  static void add(std::size_t n, const T* a, const T* b, T* out) {
    for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }
  template <class T>
  static void mul(std::size_t n, const T* a, const T* b, T* out) {
    for (std::size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
  }
  template <class T>
  static void scale(std::size_t n, T alpha, T* x) {
    for (std::size_t i = 0; i < n; ++i) x[i] *= alpha;
  }
  template <class T>
  static double sum(std::size_t n, const T* x) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(x[i]);
    return s;
  }
  template <class T>
  static double dot(std::size_t n, const T* x, const T* y) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
    return s;
  }
  template <class T>
  static bool all_finite(std::size_t n, const T* x) {
    return std::all_of(x, x + n, [](T v) { return std::isfinite(v); });
  }
  template <class T>
  static void silu_forward(std::size_t n, const T* x, T* y) {
    for (std::size_t i = 0; i < n; ++i) y[i] = math::silu(x[i]);
  }
  template <class T>
  static void silu_backward(std::size_t n, const T* x, const T* dy, T* dx) {
    for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * math::silu_derivative(x[i]);
  }
  template <class T>
  static void dropout(std::size_t n, double p, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset,
                      const T* x, T* y) {
    for (std::size_t i = 0; i < n; ++i)
      y[i] = math::philox_uniform(seed, stream, offset + i) > p ? static_cast<T>(x[i] / (1.0 - p)) : T(0);
  }
  template <class T>
  static void normal(std::size_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, T* x) {
    for (std::size_t i = 0; i < n; ++i) x[i] = math::philox_normal<T>(seed, stream, offset + i);
  }

  // Layer kernels; tensors are NCHW, "hw" the pixels of one channel plane.
  template <class T>
  static void group_norm_forward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, double eps,
                                 const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd) {
    const std::int64_t cpg = c / groups;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t base = (i * c + g * cpg) * hw;
        const math::GroupStats s = math::group_norm_stats(x + base, cpg * hw, eps);
        mean[i * groups + g] = static_cast<T>(s.mean);
        rstd[i * groups + g] = static_cast<T>(s.rstd);
        for (std::int64_t k = 0; k < cpg * hw; ++k) {
          const std::int64_t ch = g * cpg + k / hw;
          y[base + k] = static_cast<T>((static_cast<double>(x[base + k]) - s.mean) * s.rstd * gamma[ch] + beta[ch]);
        }
      }
  }
  // dx assigned; dgamma and dbeta accumulated.
  template <class T>
  static void group_norm_backward(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t groups, const T* x,
                                  const T* dy, const T* mean, const T* rstd, const T* gamma, T* dx, T* dgamma,
                                  T* dbeta) {
    const std::int64_t cpg = c / groups;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t base = (i * c + g * cpg) * hw, count = cpg * hw;
        const double mu = mean[i * groups + g], rs = rstd[i * groups + g];
        double sum_g = 0.0, sum_gx = 0.0;
        for (std::int64_t k = 0; k < count; ++k) {
          const std::int64_t ch = g * cpg + k / hw;
          const double xhat = (static_cast<double>(x[base + k]) - mu) * rs, gv = static_cast<double>(dy[base + k]);
          dgamma[ch] += static_cast<T>(gv * xhat);
          dbeta[ch] += static_cast<T>(gv);
          sum_g += gv * gamma[ch];
          sum_gx += gv * gamma[ch] * xhat;
        }
        for (std::int64_t k = 0; k < count; ++k) {
          const std::int64_t ch = g * cpg + k / hw;
          const double xhat = (static_cast<double>(x[base + k]) - mu) * rs;
          dx[base + k] = static_cast<T>(math::group_norm_dx(static_cast<double>(dy[base + k]) * gamma[ch], xhat, rs,
                                                            sum_g / count, sum_gx / count));
        }
      }
  }
  template <class T>
  static void softmax_rows(std::int64_t rows, std::int64_t cols, T scale, const T* x, T* y) {
    for (std::int64_t r = 0; r < rows; ++r) math::softmax_row(x + r * cols, y + r * cols, cols, scale);
  }
  template <class T>
  static void softmax_rows_backward(std::int64_t rows, std::int64_t cols, T scale, const T* y, const T* dy, T* dx) {
    for (std::int64_t r = 0; r < rows; ++r)
      math::softmax_row_backward(y + r * cols, dy + r * cols, dx + r * cols, cols, scale);
  }

  /// The input pixel (or -1 when it is padding) that output pixel (oy, ox) reads through tap (ki, kj).
  static std::int64_t tap(const ConvGeometry& g, std::int64_t oy, std::int64_t ox, std::int64_t ki, std::int64_t kj) {
    const std::int64_t yi = oy * g.stride - g.pad + ki, xi = ox * g.stride - g.pad + kj;
    return yi < 0 || yi >= g.h || xi < 0 || xi >= g.w ? -1 : yi * g.w + xi;
  }
  // y = conv(x, weight) (assigns).
  template <class T>
  static void conv2d_forward(const ConvGeometry& g, const T* x, const T* weight, T* y) {
    std::vector<double> acc(static_cast<std::size_t>(g.n * g.c_out * g.out_hw()), 0.0);
    visit_taps(g, [&](std::int64_t out, std::int64_t in, std::int64_t w) {
      acc[out] += static_cast<double>(weight[w]) * static_cast<double>(x[in]);
    });
    for (std::size_t i = 0; i < acc.size(); ++i) y[i] = static_cast<T>(acc[i]);
  }
  // dx = the transpose of the forward map applied to dy (assigns).
  template <class T>
  static void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* weight, T* dx) {
    std::vector<double> acc(static_cast<std::size_t>(g.n * g.c_in * g.h * g.w), 0.0);
    visit_taps(g, [&](std::int64_t out, std::int64_t in, std::int64_t w) {
      acc[in] += static_cast<double>(weight[w]) * static_cast<double>(dy[out]);
    });
    for (std::size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<T>(acc[i]);
  }
  // dweight += the products of dy and the inputs each tap read (accumulates).
  template <class T>
  static void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dweight) {
    std::vector<double> acc(static_cast<std::size_t>(g.c_out * g.patch()), 0.0);
    visit_taps(g, [&](std::int64_t out, std::int64_t in, std::int64_t w) {
      acc[w] += static_cast<double>(dy[out]) * static_cast<double>(x[in]);
    });
    for (std::size_t i = 0; i < acc.size(); ++i) dweight[i] += static_cast<T>(acc[i]);
  }
  /// f(output index, input index, weight index) for every product of the convolution.
  template <class F>
  static void visit_taps(const ConvGeometry& g, F&& f) {
    for (std::int64_t s = 0; s < g.n; ++s)
      for (std::int64_t co = 0; co < g.c_out; ++co)
        for (std::int64_t oy = 0; oy < g.out_h(); ++oy)
          for (std::int64_t ox = 0; ox < g.out_w(); ++ox)
            for (std::int64_t ci = 0; ci < g.c_in; ++ci)
              for (std::int64_t ki = 0; ki < g.kh; ++ki)
                for (std::int64_t kj = 0; kj < g.kw; ++kj) {
                  const std::int64_t pixel = tap(g, oy, ox, ki, kj);
                  if (pixel < 0) continue;
                  f(((s * g.c_out + co) * g.out_h() + oy) * g.out_w() + ox, (s * g.c_in + ci) * g.h * g.w + pixel,
                    ((co * g.c_in + ci) * g.kh + ki) * g.kw + kj);
                }
  }
  template <class T>
  static void add_channel_bias(std::int64_t n, std::int64_t c, std::int64_t hw, const T* bias, T* y) {
    for (std::int64_t i = 0; i < n * c * hw; ++i) y[i] += bias[(i / hw) % c];
  }
  template <class T>
  static void channel_bias_grad(std::int64_t n, std::int64_t c, std::int64_t hw, const T* dy, T* dbias) {
    std::vector<double> acc(static_cast<std::size_t>(c), 0.0);
    for (std::int64_t i = 0; i < n * c * hw; ++i) acc[(i / hw) % c] += static_cast<double>(dy[i]);
    for (std::int64_t j = 0; j < c; ++j) dbias[j] += static_cast<T>(acc[j]);
  }
  template <class T>
  static void add_sample_channel(std::int64_t n, std::int64_t c, std::int64_t hw, const T* e, T* y) {
    for (std::int64_t i = 0; i < n * c * hw; ++i) y[i] += e[i / hw];
  }
  template <class T>
  static void sample_channel_sum(std::int64_t n, std::int64_t c, std::int64_t hw, const T* dy, T* de) {
    for (std::int64_t p = 0; p < n * c; ++p) de[p] = static_cast<T>(sum(static_cast<std::size_t>(hw), dy + p * hw));
  }
  template <class T>
  static void upsample_nearest2x_forward(std::int64_t nc, std::int64_t h, std::int64_t w, const T* x, T* y) {
    for (std::int64_t p = 0; p < nc; ++p)
      for (std::int64_t i = 0; i < 2 * h; ++i)
        for (std::int64_t j = 0; j < 2 * w; ++j) y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
  }
  template <class T>
  static void upsample_nearest2x_backward(std::int64_t nc, std::int64_t h, std::int64_t w, const T* dy, T* dx) {
    std::fill(dx, dx + nc * h * w, T(0));
    for (std::int64_t p = 0; p < nc; ++p)
      for (std::int64_t i = 0; i < 2 * h; ++i)
        for (std::int64_t j = 0; j < 2 * w; ++j) dx[(p * h + i / 2) * w + j / 2] += dy[(p * 2 * h + i) * 2 * w + j];
  }
  template <class T>
  static void timestep_embedding(std::int64_t n, std::int64_t dim, const T* t, T* out, double max_period,
                                 double shift) {
    const std::int64_t half = dim / 2;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < dim; ++k) {
        const double freq = k < 2 * half ? math::timestep_frequency(k % half, half, max_period, shift) : 0.0;
        out[i * dim + k] = static_cast<T>(math::timestep_embedding_value_at(static_cast<double>(t[i]), k, dim, freq));
      }
  }

  // Update kernels (left out in PlainBackend<false>, which the concept must then reject).
  template <class T>
  requires WithUpdates static void weighted_sum(std::int64_t n, std::int64_t d, const double* w,
                                                std::array<const T*, sampler_terms> terms, T* out) {
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < d; ++j) {
        double acc = 0.0;
        for (int k = 0; k < sampler_terms; ++k)
          if (terms[k]) acc += w[i * sampler_terms + k] * static_cast<double>(terms[k][i * d + j]);
        out[i * d + j] = static_cast<T>(acc);
      }
  }
  template <class T>
  requires WithUpdates static void adamw(std::size_t n, T* param, const T* grad, T* m, T* v,
                                         const math::AdamHyper& hyper, long long step) {
    const math::AdamBiasCorrection correction = math::adam_bias_correction(hyper, step);
    for (std::size_t i = 0; i < n; ++i) math::adamw_update(param[i], grad[i], m[i], v[i], hyper, correction);
  }
};

using Plain = PlainBackend<true>;
static_assert(Backend<Plain>);
// A back end without the update kernels is not a Backend: it would fail deep inside a sampler.
static_assert(!BackendUpdates<PlainBackend<false>> && !Backend<PlainBackend<false>>);

template <class B>
using Net =
    unet::UNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>, unet::ImageChannels<1>,
               unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<10>, unet::OnBackend<B>>;
using Schedule = schedule::Linear<50>;
constexpr double kLr = 1e-3;

data::ImageDataset patterns(std::int64_t count) {
  data::ImageDataset d;
  d.count = count, d.channels = 1, d.height = 8, d.width = 8;
  for (std::int64_t i = 0; i < count; ++i) {
    d.labels.push_back(0);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        d.pixels.push_back(static_cast<float>(std::sin(0.6 * x + 0.4 * static_cast<double>(i)) * std::cos(0.5 * y)));
  }
  return d;
}

struct Outcome {
  std::vector<double> losses;
  std::vector<float> weights, samples;
};

/// Three training steps (dropout on, AdamW, EMA) and a 5-step DDIM draw on back end B.
template <class B>
Outcome train_and_sample() {
  Generator init(3);
  Net<B> net;
  net.initialize(init);
  model::Progressive<Net<B>> model(std::move(net), Schedule::steps);
  train::TrainOptions o;
  o.steps = 3, o.batch_size = 4, o.seed = 5, o.lr.lr = kLr, o.ema.decay = 0.9;
  o.progress.mode = train::ProgressOptions::Mode::Off;
  Outcome r;
  for (const auto& s : train::train_stage1(model, Schedule{}, patterns(12), o).steps) r.losses.push_back(s.loss);
  r.weights = train_test::all_weights<float>(model);
  r.samples =
      sample::Ddim::from_schedule(Schedule{}, 5, 1.0).template sample<float, B>(model, Shape{2, 1, 8, 8}, 7).to_host();
  return r;
}

/// Largest |a - b| / max(1, |b|).
template <class T>
double worst(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  double w = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    w = std::max(w, std::fabs(double(a[i]) - double(b[i])) / std::max(1.0, std::fabs(double(b[i]))));
  return w;
}

}  // namespace

TEST_CASE("a back end written from scratch to the Backend concept trains and samples like the CPU back end") {
  const Outcome plain = train_and_sample<Plain>(), cpu = train_and_sample<backend::Cpu>();
  REQUIRE(plain.losses.size() == 3);
  // The same batches, noise, dropout masks and timesteps (Philox, keyed by sample): only the
  // summation order differs, so the losses agree closely ...
  CHECK(worst(plain.losses, cpu.losses) < 1e-4);
  // ... and each weight within 2 lr after the steps: AdamW moves a weight with a near-zero
  // gradient by about lr in its sign's direction, which rounding may flip; a kernel with a
  // wrong meaning (a gradient assigned instead of accumulated, say) moves weights much further.
  CHECK(worst(plain.weights, cpu.weights) < 2 * kLr);
  CHECK(worst(plain.samples, cpu.samples) < 1e-3);
  CHECK(std::all_of(plain.samples.begin(), plain.samples.end(), [](float v) { return std::isfinite(v); }));
}

}  // namespace progdiff_tests_backend_contract
