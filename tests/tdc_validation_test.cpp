// The validation slice of TDC's selection (data/validation_split.hpp, tdc/validation.hpp): it is
// the last images of the training split and disjoint from what is trained on; the proxy search's
// choice depends on that slice and on nothing else of the data, so no test image can steer it;
// any PruningProxy and any importance criterion plug into run_tdc (tdc/importance.hpp,
// prune/any_proxy.hpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "progdiff/backend/cpu/cpu.hpp"
#include "progdiff/data/validation_split.hpp"
#include "progdiff/difficulty/snr_flops.hpp"
#include "progdiff/group/flops_interval.hpp"
#include "progdiff/prune/external_proxy.hpp"
#include "progdiff/prune/search_proxy.hpp"
#include "progdiff/schedule/discrete.hpp"
#include "progdiff/tdc/validation.hpp"
#include "progdiff/unet/unet.hpp"
#include "tdc_support.hpp"
#include "train_support.hpp"

namespace progdiff_tests_tdc_validation {

namespace {

namespace unet = progdiff::unet;
namespace model = progdiff::model;
namespace train = progdiff::train;
namespace tdc = progdiff::tdc;
namespace data = progdiff::data;
namespace prune = progdiff::prune;
namespace fs = std::filesystem;
using progdiff::Generator;

using tdc_test::banks;
using tdc_test::base_model;
using tdc_test::Net;
using tdc_test::read_text;
using tdc_test::Schedule;
using tdc_test::three_groups;
// Label i for image i: which images a split holds shows in its labels.
progdiff::data::ImageDataset patterns(std::int64_t count, double phase) {
  return tdc_test::patterns(count, phase, true);
}

tdc::TdcOptions options(const fs::path& dir, tdc::TdcPruning pruning) {
  tdc::TdcOptions o = tdc_test::small_options(dir, pruning, 0);  // the selection alone
  o.validation_images = 8;
  return o;
}

const train_test::ScratchDir scratch("progdiff_tdc_validation_test");

struct OneThread {
  int before = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(before); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};

}  // namespace

TEST_CASE("split_validation holds out the last images of the training split, disjoint from the rest") {
  const auto train_split = patterns(10, 0.0);
  const auto [fit, validation] = data::split_validation(train_split, 3);
  REQUIRE(fit.count == 7);
  REQUIRE(validation.count == 3);
  CHECK(fit.labels == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6});
  CHECK(validation.labels == std::vector<std::int64_t>{7, 8, 9});
  // the pixels, concatenated again, are the split's exactly
  std::vector<float> joined = fit.pixels;
  joined.insert(joined.end(), validation.pixels.begin(), validation.pixels.end());
  CHECK(joined == train_split.pixels);
  CHECK_NOTHROW(fit.validate("fit"));
  CHECK_NOTHROW(validation.validate("validation"));
  // both parts must hold images; the message gives the numbers and the valid range
  CHECK_THROWS_WITH_AS(data::split_validation(train_split, 0),
                       doctest::Contains("0 validation images out of 10 training images; it must lie in [1, 9]"),
                       progdiff::ConfigError);
  CHECK_THROWS_AS(data::split_validation(train_split, 10), progdiff::ConfigError);
}

TEST_CASE("the proxy's selection reads the validation slice of the training split and nothing else") {
  const OneThread one;
  const Schedule schedule;
  const auto train_split = patterns(32, 0.0);

  // run_tdc on the training split alone equals run_tdc on the explicit split
  auto base = base_model();
  const fs::path one_call = scratch("one_call");
  auto r1 = tdc::run_tdc(base, three_groups(), schedule, train_split, options(one_call, tdc::TdcPruning::Proxy));
  const auto [fit, validation] = data::split_validation(train_split, 8);
  auto base2 = base_model();
  const fs::path explicit_split = scratch("explicit_split");
  tdc::run_tdc(base2, three_groups(), schedule, fit, validation, options(explicit_split, tdc::TdcPruning::Proxy));
  CHECK(banks(one_call) == banks(explicit_split));
  REQUIRE(r1.report.groups.size() == 3);
  CHECK(std::isfinite(r1.report.groups[0].pruned_loss));

  // Other images in the part that is trained on: the selection is unchanged. (With no
  // fine-tuning, nothing else of the data could reach it.)
  auto other_fit = train_split;
  const auto replacement = patterns(32, 2.1);
  std::copy(replacement.pixels.begin(), replacement.pixels.begin() + 24 * 64, other_fit.pixels.begin());
  auto base3 = base_model();
  const fs::path fit_changed = scratch("fit_changed");
  tdc::run_tdc(base3, three_groups(), schedule, other_fit, options(fit_changed, tdc::TdcPruning::Proxy));
  CHECK(banks(fit_changed) == banks(one_call));

  // Other images in the validation slice: the schemes' losses change, so the slice is what the
  // selection reads. A test split is no argument of the pipeline, so it cannot be read at all.
  auto other_validation = train_split;
  std::copy(replacement.pixels.begin() + 24 * 64, replacement.pixels.end(), other_validation.pixels.begin() + 24 * 64);
  auto base4 = base_model();
  const fs::path validation_changed = scratch("validation_changed");
  tdc::run_tdc(base4, three_groups(), schedule, other_validation, options(validation_changed, tdc::TdcPruning::Proxy));
  CHECK(banks(validation_changed)[0] != banks(one_call)[0]);

  // A poisoned validation slice (NaN pixels) leaves no scheme with a finite loss: the search
  // fails loudly instead of choosing on garbage.
  auto poisoned = train_split;
  for (std::size_t i = 24 * 64; i < poisoned.pixels.size(); ++i)
    poisoned.pixels[i] = std::numeric_limits<float>::quiet_NaN();
  auto base5 = base_model();
  CHECK_THROWS_WITH_AS(
      tdc::run_tdc(base5, three_groups(), schedule, poisoned, options(scratch("poisoned"), tdc::TdcPruning::Proxy)),
      doctest::Contains("no scheme with a finite loss"), progdiff::ConfigError);
}

TEST_CASE("run_tdc takes any PruningProxy: an external proxy's answers are the schemes it evaluates") {
  const Schedule schedule;
  const auto train_split = patterns(32, 0.0);
  auto base = base_model();
  auto o = options(scratch("external"), tdc::TdcPruning::Proxy);
  o.proxy_rounds = 1;
  o.proxy_candidates = 1;
  o.proxy_name = "external";
  std::vector<std::int64_t> asked;
  // answers the uniform scheme's widths: each layer at the smallest width the prompt allows
  o.make_proxy = [&asked](std::int64_t group, std::uint64_t) -> prune::AnyPruningProxy {
    asked.push_back(group);
    return prune::ExternalProxy([](const std::string& json, const std::string&) {
      const auto prompt = nlohmann::json::parse(json);
      nlohmann::json widths = nlohmann::json::object();
      for (const auto& layer : prompt.at("layers")) widths[layer.at("name").get<std::string>()] = layer.at("min_width");
      return nlohmann::json{{"schemes", nlohmann::json::array({nlohmann::json{{"widths", widths}}})}}.dump();
    });
  };
  auto r = tdc::run_tdc(base, three_groups(), schedule, train_split, o);
  CHECK(asked == std::vector<std::int64_t>{0, 1});  // group 2 has budget 1: no search
  const auto bank = nlohmann::json::parse(read_text(o.out_dir / "group0" / "memory_bank.json"));
  REQUIRE(bank["entries"].size() == 1);
  CHECK(bank["entries"][0]["source"] == "external");
  const auto manifest = nlohmann::json::parse(read_text(o.out_dir / "tdc.json"));
  CHECK(manifest["proxy"] == "external");
  // the same directory with the built-in proxy is refused, not mixed into the same banks
  auto base2 = base_model();
  auto search = options(o.out_dir, tdc::TdcPruning::Proxy);
  CHECK_THROWS_WITH_AS(tdc::run_tdc(base2, three_groups(), schedule, train_split, search), doctest::Contains("proxy"),
                       progdiff::ConfigError);
}

namespace {
// A criterion of the test's own: keeps the channels with the highest index. Its scores are a
// closed form, so the pruned widths' kept channels can be checked.
struct LastChannelsFirst {
  int calls = 0;
  prune::ChannelScores scores(tdc::ImportanceProbe<Net>& p) {
    ++calls;
    CHECK(p.end > p.begin);
    prune::ChannelScores s;
    for (const auto& g : p.groups.groups) {
      std::vector<double> v;
      for (std::int64_t j = 0; j < g.width; ++j) v.push_back(static_cast<double>(j));
      s.push_back(std::move(v));
    }
    return s;
  }
};
}  // namespace

TEST_CASE("an importance criterion of one's own plugs into run_tdc by name, without an enum value") {
  const Schedule schedule;
  const auto train_split = patterns(32, 0.0);
  auto base = base_model();
  auto o = options(scratch("own_criterion"), tdc::TdcPruning::Magnitude);
  auto r = tdc::run_tdc(base, three_groups(), schedule, data::split_validation(train_split, 8).fit,
                        data::split_validation(train_split, 8).validation, o,
                        tdc::AnyImportance<Net>("last-first", LastChannelsFirst{}));
  REQUIRE(r.model.has_value());
  const progdiff::Shape image{1, 1, 8, 8};
  CHECK(r.model->denoiser(0).flops(image) <= 0.6 * static_cast<double>(base.denoiser(0).flops(image)));
  const auto bank = nlohmann::json::parse(read_text(o.out_dir / "group0" / "memory_bank.json"));
  CHECK(bank["entries"][0]["source"] == "last-first");
  CHECK(nlohmann::json::parse(read_text(o.out_dir / "tdc.json"))["pruning"] == "last-first");
  // a criterion that scores the wrong number of channels is refused with its name and group
  struct Short {
    prune::ChannelScores scores(tdc::ImportanceProbe<Net>&) { return {}; }
  };
  auto base2 = base_model();
  CHECK_THROWS_WITH_AS(
      tdc::run_tdc(base2, three_groups(), schedule, train_split, train_split,
                   options(scratch("short"), tdc::TdcPruning::Magnitude), tdc::AnyImportance<Net>("short", Short{})),
      doctest::Contains("TDC criterion 'short', group 0"), progdiff::ConfigError);
}

TEST_CASE("the pruning criteria's command-line names: one per value, and parsing lists them") {
  CHECK(tdc::parse_tdc_pruning("diff-pruning") == tdc::TdcPruning::DiffPruning);
  for (const auto& [value, name] : tdc::kTdcPruningNames) CHECK(tdc::parse_tdc_pruning(name) == value);
  CHECK_THROWS_WITH_AS(tdc::parse_tdc_pruning("lottery"),
                       doctest::Contains("'lottery' (none, random, magnitude, taylor, diff-pruning, proxy)"),
                       progdiff::ConfigError);
}

}  // namespace progdiff_tests_tdc_validation
