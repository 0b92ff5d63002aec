// progdiff checkpoints in PyTorch (python/progdiff_torch.py): this file writes one checkpoint of
// every model kind (unified; progressive with pruned, non-uniform widths and an EMA; a TDC run
// folder of pruned, fine-tuned groups; a shared encoder with three decoders; separate experts; a
// learned-variance U-Net with the single-attention layout) with random weights, and progdiff's
// predictions on fixed mixed-timestep batches beside them. python/check_progdiff_torch.py
// rebuilds each model in PyTorch from the file alone and compares (the progdiff_torch ctest;
// PROGDIFF_TORCH_CHECK_DIR names the folder). Here, each routed prediction is checked against
// its group's own net run on that sample alone, the reference the routing must reproduce.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/group/uniform_split.hpp"
#include "progdiff/io/checkpoint.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/model/interval_routed.hpp"
#include "progdiff/model/progressive.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/pipeline.hpp"
#include "progdiff/unet/multi_decoder_unet.hpp"
#include "progdiff/unet/separate_experts.hpp"
#include "progdiff/unet/unet.hpp"
#include "train_support.hpp"

namespace progdiff_tests_interop_torch {

namespace {

namespace pd = progdiff;
namespace fs = std::filesystem;
namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
namespace optim = progdiff::optim;
namespace io = progdiff::io;
using Cpu = pd::backend::Cpu;
using Tensor = pd::Tensor<float, Cpu>;

// 8x8 images of two channels, levels of 8 and 4 pixels, attention at 4x4 after every block.
#define NET_OPTIONS                                                                                         \
  unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>, unet::ImageChannels<2>, \
      unet::BaseChannels<8>, unet::GroupNormGroups<4>, unet::DropoutPercent<0>
using Net = unet::UNet<NET_OPTIONS>;
using Multi = unet::MultiDecoderUNet<NET_OPTIONS, unet::Decoders<3>>;
using Experts = unet::SeparateExperts<Net, 2>;
#undef NET_OPTIONS
// Three levels, two ResBlocks each, one attention block in the encoder only, 2C outputs.
using VarianceNet =
    unet::UNet<unet::Levels<1, 2, 2>, unet::ResBlocks<2>, unet::AttentionAt<4>, unet::SingleEncoderAttention,
               unet::ImageSize<8>, unet::ImageChannels<2>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
               unet::DropoutPercent<0>, unet::LearnedVariance>;
// The multi-decoder model with 2C outputs (a multi-stage model on IDDPM's hybrid objective).
using VarianceMulti =
    unet::MultiDecoderUNet<unet::Levels<1, 2>, unet::ResBlocks<1>, unet::AttentionAt<4>, unet::ImageSize<8>,
                           unet::ImageChannels<2>, unet::BaseChannels<8>, unet::GroupNormGroups<4>,
                           unet::DropoutPercent<0>, unet::LearnedVariance, unet::Decoders<3>>;
using Schedule = pd::schedule::Linear<100>;

const train_test::ScratchDir scratch("progdiff_interop_torch_test");

// The folder the checkpoints go to: PROGDIFF_TORCH_CHECK_DIR when the Python check reads them.
fs::path output_dir() {
  if (const char* dir = std::getenv("PROGDIFF_TORCH_CHECK_DIR")) {
    fs::create_directories(dir);
    return dir;
  }
  const fs::path dir = scratch("out");
  fs::create_directories(dir);
  return dir;
}

// The run-time settings every net shares: two heads, diffusers' frequency shift, DDPM's padding.
unet::UNetConfig config() {
  unet::UNetConfig c = Net::default_config();
  c.heads = 2;
  c.time_shift = 0.0;
  c.downsample_padding = 0;
  return c;
}

// PyTorch's initialization, then every value moved by up to +-0.2 so that GroupNorm scales
// and all biases differ from their defaults.
template <class M>
void randomize(M& m, std::uint64_t seed) {
  pd::Generator gen(seed);
  m.initialize(gen);
  m.visit_parameters(
      [&](const std::string&, auto& p) {
        auto v = p.value.to_host();
        for (auto& e : v) e += static_cast<float>(gen.uniform(-0.2, 0.2));
        p.value = Tensor::from_host(p.value.shape(), v);
      },
      std::string());
}

Tensor images(std::int64_t n, std::uint64_t seed) {
  pd::Generator gen(seed);
  std::vector<float> v;
  for (std::int64_t i = 0; i < n * 2 * 64; ++i) v.push_back(gen.normal<float>());
  return Tensor::from_host(pd::Shape{n, 2, 8, 8}, v);
}

// A batch of six with timesteps in every group of a 100-step partition, out of order.
const std::vector<std::int64_t> kTimesteps{97, 3, 45, 70, 12, 55};

template <class M>
io::ModelDescription description(const M& m) {
  auto d = m.describe();
  model::describe_schedule(d, Schedule{});
  return d;
}

struct Case {
  std::string name, checkpoint, weights = "auto";
};

// Writes the inputs and progdiff's outputs of case `c`.
void write_io(const fs::path& dir, const Case& c, const Tensor& x, const std::vector<double>& t, const Tensor& y) {
  pd::io::SafetensorsFile f;
  pd::io::put_tensor(f, "x", x);
  f.put<double>("t", {static_cast<std::int64_t>(t.size())}, t);
  pd::io::put_tensor(f, "y", y);
  pd::io::write_safetensors(dir / (c.name + ".io.safetensors"), f);
}

std::vector<double> as_double(const std::vector<std::int64_t>& t) { return {t.begin(), t.end()}; }

// max |a - b| / max |b|.
double relative(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return err / scale;
}

// Sample i of the routed prediction y against `net` run on sample i alone at timestep t.
template <class F>
double routed_error(const Tensor& x, const std::vector<double>& t, const Tensor& y, F&& alone) {
  const auto all = y.to_host();
  const std::int64_t per = y.numel() / y.dim(0), in = x.numel() / x.dim(0);
  const auto xs = x.to_host();
  double worst = 0;
  for (std::int64_t i = 0; i < x.dim(0); ++i) {
    const auto xi = Tensor::from_host(pd::Shape{1, x.dim(1), x.dim(2), x.dim(3)},
                                      std::vector<float>(xs.begin() + i * in, xs.begin() + (i + 1) * in));
    const auto ti = Tensor::from_host(pd::Shape{1}, std::vector<float>{static_cast<float>(t[i])});
    const auto yi = alone(i, xi, ti).to_host();
    worst = std::max(worst, relative(std::vector<float>(all.begin() + i * per, all.begin() + (i + 1) * per), yi));
  }
  return worst;
}

// A net of non-uniform widths: the default table of base 8 with some layers pruned or widened.
unet::WidthTable pruned_widths(std::int64_t variant) {
  unet::WidthTable w = Net::default_widths();
  for (auto& l : w.layers) {
    if (l.layer == "temb.hidden") l.channels = 20 + 4 * variant;
    if (l.layer == "down.0.res.0") l.channels = 4 + 4 * variant;
    if (l.layer == "down.0.downsample") l.channels = 12;
    if (l.layer == "mid.res.0") l.channels = 8 + 4 * variant;
    if (l.layer == "up.1.res.1") l.channels = 12 - 4 * (variant % 2);
    if (l.layer == "up.0.res.0") l.channels = 4 * (variant + 1);
  }
  return w;
}

}  // namespace

TEST_CASE("checkpoints of every model kind, with progdiff's predictions, for the PyTorch module") {
  const fs::path dir = output_dir();
  const Tensor x = images(6, 7);
  const std::vector<double> t = as_double(kTimesteps);
  const auto partition3 = pd::group::UniformSplit{3}.group(Schedule{});
  std::vector<Case> cases;

  {
    Case c{"unified", "unified.safetensors"};
    model::Progressive<Net> m(Net(Net::default_widths(), config()), Schedule::steps);
    randomize(m, 1);
    io::save_checkpoint(dir / c.checkpoint, m, description(m), io::TrainingState{});
    const Tensor y = m.predict(x, kTimesteps);
    CHECK(routed_error(x, t, y, [&](std::int64_t, const Tensor& xi, const Tensor& ti) {
            return m.denoiser(0).forward(xi, ti);
          }) < 1e-5);
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }
  {
    // Three groups of different pruned widths; the EMA differs from the current weights.
    std::vector<Net> nets;
    for (std::int64_t k = 0; k < 3; ++k) nets.emplace_back(pruned_widths(k), config());
    model::Progressive<Net> m(partition3, std::move(nets));
    randomize(m, 2);
    optim::Ema<float, Cpu> ema;
    ema.initialize(m);
    const Tensor y_ema = m.predict(x, kTimesteps);
    const std::vector<double> fractional{96.6, 2.5, 33.4, 66.5, 12.2, 54.7};
    const Tensor y_fractional = m.predict(x, std::span<const double>(fractional));
    randomize(m, 3);
    io::save_checkpoint(dir / "pruned.safetensors", m, description(m), io::TrainingState{},
                        static_cast<const optim::AdamW<float, Cpu>*>(nullptr), &ema);
    const Tensor y_model = m.predict(x, kTimesteps);
    CHECK(routed_error(x, t, y_model, [&](std::int64_t i, const Tensor& xi, const Tensor& ti) {
            return m.denoiser(m.group_of(kTimesteps[static_cast<std::size_t>(i)])).forward(xi, ti);
          }) < 1e-5);
    CHECK(m.denoiser(0).widths() != m.denoiser(1).widths());
    const Case ema_case{"pruned_ema", "pruned.safetensors", "auto"},
        model_case{"pruned_model", "pruned.safetensors", "model"};
    const Case fractional_case{"pruned_fractional", "pruned.safetensors", "ema"};
    write_io(dir, ema_case, x, t, y_ema);
    write_io(dir, model_case, x, t, y_model);
    write_io(dir, fractional_case, x, fractional, y_fractional);
    cases.insert(cases.end(), {ema_case, model_case, fractional_case});
  }
  {
    // TDC: a base pruned per group to its budget and fine-tuned; the folder is the checkpoint.
    model::Progressive<Net> base(Net(Net::default_widths(), config()), Schedule::steps);
    randomize(base, 4);
    pd::group::Partition p = partition3;
    p.budgets = {1.0, 0.7, 0.45};
    tdc::TdcOptions o;
    o.out_dir = dir / "tdc";
    fs::remove_all(o.out_dir);
    o.pruning = tdc::TdcPruning::Magnitude;
    o.eval_samples = 4;
    o.eval_batch_size = 4;
    o.finetune.steps = 2;
    o.finetune.batch_size = 4;
    o.finetune.lr.lr = 1e-3;
    o.finetune.progress.mode = train::ProgressOptions::Mode::Off;
    pd::data::ImageDataset data;
    data.count = 8, data.channels = 2, data.height = 8, data.width = 8;
    const auto pixels = images(8, 9).to_host();
    data.pixels.assign(pixels.begin(), pixels.end());
    data.labels.assign(8, 0);
    auto r = tdc::run_tdc(base, p, Schedule{}, data, data, o);
    REQUIRE(r.model.has_value());
    CHECK(r.model->denoiser(2).parameter_count() < r.model->denoiser(1).parameter_count());
    const Tensor y = r.model->predict(x, kTimesteps);
    CHECK(routed_error(x, t, y, [&](std::int64_t i, const Tensor& xi, const Tensor& ti) {
            return r.model->denoiser(r.model->group_of(kTimesteps[static_cast<std::size_t>(i)])).forward(xi, ti);
          }) < 1e-5);
    const Case c{"tdc", "tdc"};
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }
  {
    // A shared encoder and three decoders of bases 16, 8, 4 (GroupNorm groups 4, 2, 1).
    model::IntervalRouted<Multi> m(Multi(Multi::default_widths(8, {16, 8, 4}), config()), partition3);
    randomize(m, 5);
    io::save_checkpoint(dir / "multi_decoder.safetensors", m, description(m), io::TrainingState{});
    const Tensor y = m.predict(x, kTimesteps);
    CHECK(routed_error(x, t, y, [&](std::int64_t i, const Tensor& xi, const Tensor& ti) {
            const std::vector<std::int64_t> k{partition3.group_of(kTimesteps[static_cast<std::size_t>(i)])};
            return m.inner().forward(xi, ti, k);
          }) < 1e-5);
    const Case c{"multi_decoder", "multi_decoder.safetensors"};
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }
  {
    const auto partition2 = pd::group::UniformSplit{2}.group(Schedule{});
    model::IntervalRouted<Experts> m(Experts({Net::default_widths(8), pruned_widths(1)}, config()), partition2);
    randomize(m, 6);
    io::save_checkpoint(dir / "separate_experts.safetensors", m, description(m), io::TrainingState{});
    const Tensor y = m.predict(x, kTimesteps);
    CHECK(routed_error(x, t, y, [&](std::int64_t i, const Tensor& xi, const Tensor& ti) {
            return m.inner().expert(partition2.group_of(kTimesteps[static_cast<std::size_t>(i)])).forward(xi, ti);
          }) < 1e-5);
    const Case c{"separate_experts", "separate_experts.safetensors"};
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }
  {
    unet::UNetConfig vc = VarianceNet::default_config();
    vc.heads = 2;
    model::Progressive<VarianceNet> m(VarianceNet(VarianceNet::default_widths(), vc), Schedule::steps);
    randomize(m, 7);
    io::save_checkpoint(dir / "learned_variance.safetensors", m, description(m), io::TrainingState{});
    const Tensor y = m.predict(x, kTimesteps);
    CHECK(y.dim(1) == 4);
    const Case c{"learned_variance", "learned_variance.safetensors"};
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }

  {
    // Three learned-variance groups given a batch that mixes them: 2C outputs scattered per group.
    unet::UNetConfig vc = VarianceNet::default_config();
    vc.heads = 2;
    std::vector<VarianceNet> nets;
    for (std::int64_t k = 0; k < 3; ++k) nets.emplace_back(VarianceNet::default_widths(), vc);
    model::Progressive<VarianceNet> m(partition3, std::move(nets));
    randomize(m, 8);
    io::save_checkpoint(dir / "learned_variance_groups.safetensors", m, description(m), io::TrainingState{});
    const Tensor y = m.predict(x, kTimesteps);
    REQUIRE(y.dim(1) == 4);
    CHECK(routed_error(x, t, y, [&](std::int64_t i, const Tensor& xi, const Tensor& ti) {
            return m.denoiser(m.group_of(kTimesteps[static_cast<std::size_t>(i)])).forward(xi, ti);
          }) < 1e-5);
    const Case c{"learned_variance_groups", "learned_variance_groups.safetensors"};
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }
  {
    // A shared encoder and three learned-variance decoders of bases 16, 8, 4.
    model::IntervalRouted<VarianceMulti> m(VarianceMulti(VarianceMulti::default_widths(8, {16, 8, 4}), config()),
                                           partition3);
    randomize(m, 9);
    io::save_checkpoint(dir / "learned_variance_multi_decoder.safetensors", m, description(m), io::TrainingState{});
    const Tensor y = m.predict(x, kTimesteps);
    REQUIRE(y.dim(1) == 4);
    CHECK(routed_error(x, t, y, [&](std::int64_t i, const Tensor& xi, const Tensor& ti) {
            const std::vector<std::int64_t> k{partition3.group_of(kTimesteps[static_cast<std::size_t>(i)])};
            return m.inner().forward(xi, ti, k);
          }) < 1e-5);
    const Case c{"learned_variance_multi_decoder", "learned_variance_multi_decoder.safetensors"};
    write_io(dir, c, x, t, y);
    cases.push_back(c);
  }

  nlohmann::json manifest = nlohmann::json::array();
  for (const auto& c : cases)
    manifest.push_back(
        {{"name", c.name}, {"checkpoint", c.checkpoint}, {"io", c.name + ".io.safetensors"}, {"weights", c.weights}});
  std::ofstream(dir / "cases.json") << manifest.dump(2) << "\n";
  CHECK(cases.size() == 10);
}

}  // namespace progdiff_tests_interop_torch
#undef NET_OPTIONS
