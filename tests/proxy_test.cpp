// Proxy-based pruning (prune/): search space and scheme validation, the memory bank's JSON form,
// the prompt and answer protocol of external proxies (callback and shell command), the built-in
// search against the exact optimum of a synthetic problem, determinism and resumption.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/prune/external_proxy.hpp"
#include "progdiff/prune/memory_bank.hpp"
#include "progdiff/prune/proxy_answer.hpp"
#include "progdiff/prune/proxy_prompt.hpp"
#include "progdiff/prune/proxy_pruning.hpp"
#include "progdiff/prune/scheme.hpp"
#include "progdiff/prune/search_proxy.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff_tests_proxy {

namespace pr = progdiff::prune;
using progdiff::ConfigError;
using progdiff::FormatError;
using progdiff::IoError;

namespace {

const std::filesystem::path fixtures = std::filesystem::path(PROGDIFF_FIXTURES_DIR) / "prune";

// A scratch directory of its own per test, removed afterwards.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("progdiff_proxy_test_" + name);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

// Synthetic problem with a known optimum: loss = sum_i c_i / w_i, FLOPs = base + sum_i f_i w_i.
struct Synthetic {
  std::vector<double> c;
  std::vector<std::int64_t> f;
  double base = 1000.0;
  pr::SearchSpace space;

  Synthetic(std::vector<pr::PrunableLayer> layers, std::vector<double> cost,
            std::vector<std::int64_t> flops_per_channel, double limit_fraction)
      : c(std::move(cost)), f(std::move(flops_per_channel)) {
    space.layers = std::move(layers);
    const auto f_copy = f;
    const double b = base;
    space.flops = [f_copy, b](std::span<const std::int64_t> w) {
      double total = b;
      for (std::size_t i = 0; i < w.size(); ++i) total += static_cast<double>(f_copy[i] * w[i]);
      return total;
    };
    const double full = space.flops(space.full_widths());
    space.flops_limit = std::floor(base + limit_fraction * (full - base));
    for (std::int64_t t = 300; t < 400; ++t) space.timesteps.push_back(t);
  }
  double loss(const pr::Scheme& s) const {
    double total = 0.0;
    for (std::size_t i = 0; i < c.size(); ++i) total += c[i] / static_cast<double>(s.widths[i]);
    return total;
  }
  // The test's own FLOPs sum (not through the space), to check proposals independently.
  double flops(const pr::Scheme& s) const {
    double total = base;
    for (std::size_t i = 0; i < f.size(); ++i) total += static_cast<double>(f[i] * s.widths[i]);
    return total;
  }
  // Continuous optimum (Lagrange): w_i = B sqrt(c_i / f_i) / sum_j sqrt(c_j f_j), loss = (sum sqrt(c f))^2 / B.
  double continuous_optimum() const {
    double s = 0.0;
    for (std::size_t i = 0; i < c.size(); ++i) s += std::sqrt(c[i] * static_cast<double>(f[i]));
    return s * s / (space.flops_limit - base);
  }
  // Exact optimum over the allowed widths: a multiple-choice knapsack over integer FLOPs.
  double discrete_optimum() const {
    const auto budget = static_cast<std::int64_t>(space.flops_limit - base);
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> best(static_cast<std::size_t>(budget) + 1, 0.0);
    for (std::size_t i = 0; i < c.size(); ++i) {
      std::vector<double> next(best.size(), inf);
      const pr::PrunableLayer& l = space.layers[i];
      for (std::int64_t w = l.min_width; w <= l.width; w += l.step)
        for (std::int64_t b = f[i] * w; b <= budget; ++b)
          next[static_cast<std::size_t>(b)] =
              std::min(next[static_cast<std::size_t>(b)], best[static_cast<std::size_t>(b - f[i] * w)] + c[i] / w);
      best = std::move(next);
    }
    return *std::min_element(best.begin(), best.end());
  }
};

Synthetic eight_layers(double limit_fraction = 0.45) {
  std::vector<pr::PrunableLayer> layers{{"down.0", 64, 8, 8},   {"down.1", 128, 16, 16}, {"down.2", 128, 8, 8},
                                        {"mid.0", 256, 32, 32}, {"mid.1", 256, 16, 16},  {"up.0", 192, 16, 16},
                                        {"up.1", 128, 8, 8},    {"up.2", 64, 8, 8}};
  return Synthetic(std::move(layers), {40.0, 300.0, 90.0, 900.0, 250.0, 500.0, 120.0, 30.0}, {9, 4, 6, 2, 3, 3, 5, 8},
                   limit_fraction);
}

// A small space for the protocol tests: three layers, FLOPs = sum_i (i + 1) * w_i.
pr::SearchSpace three_layers(double limit = 300.0) {
  pr::SearchSpace s;
  s.layers = {{"a", 64, 8, 8}, {"b", 32, 4, 4}, {"c", 48, 16, 16}};
  s.flops = [](std::span<const std::int64_t> w) { return 1.0 * w[0] + 2.0 * w[1] + 3.0 * w[2]; };
  s.flops_limit = limit;
  s.timesteps = {10, 11, 12};
  s.description = "three conv layers";
  return s;
}

// A proxy whose proposals are fixed in advance.
struct ScriptedProxy {
  std::vector<std::vector<pr::Scheme>> rounds;
  std::size_t calls = 0;
  std::vector<pr::Scheme> propose(const pr::ProxyRequest& r) {
    ++calls;
    return rounds.at(static_cast<std::size_t>(r.round));
  }
};

static_assert(pr::PruningProxy<pr::SearchProxy>);
static_assert(pr::PruningProxy<pr::ExternalProxy>);
static_assert(pr::PruningProxy<ScriptedProxy>);
static_assert(!pr::PruningProxy<int>);

}  // namespace

TEST_CASE("search space: validation names the layer and the value") {
  pr::SearchSpace s = three_layers();
  CHECK_NOTHROW(s.validate());
  CHECK(s.index_of("b") == 1);
  CHECK(message_of([&] { (void)s.index_of("zz"); }) == "pruning search space: unknown layer 'zz' (layers: a, b, c)");
  {
    auto bad = s;
    bad.layers[1].min_width = 6;  // 32 - 6 = 26 is not a multiple of 4
    CHECK(message_of([&] {
            bad.validate();
          }).find("layer 1 'b': width 32 minus min_width 6 is not a multiple of step 4") != std::string::npos);
  }
  {
    auto bad = s;
    bad.layers[2].name = "a";
    CHECK(message_of([&] { bad.validate(); }).find("layer 2 'a' has the same name as layer 0") != std::string::npos);
  }
  {
    auto bad = s;
    bad.flops_limit = 100.0;  // narrowest: 8 + 2*4 + 3*16 = 64 fits; 50 does not
    CHECK_NOTHROW(bad.validate());
    bad.flops_limit = 50.0;
    CHECK(message_of([&] { bad.validate(); }).find("costs 64 FLOPs, over the limit 50") != std::string::npos);
  }
  CHECK(s.layers[0].choices() == 8);
  CHECK(s.layers[0].nearest_allowed(35.9) == 32);
  CHECK(s.layers[0].nearest_allowed(36.0) == 40);  // a tie keeps the wider width
  CHECK(s.layers[0].nearest_allowed(3.0) == 8);
}

TEST_CASE("scheme: ratios and widths by name, with errors naming layer and value") {
  const pr::SearchSpace s = three_layers();
  const pr::Scheme r = pr::scheme_from_ratios(s, {{"a", 0.5}, {"c", 1.0 / 3.0}});
  CHECK(r.widths == std::vector<std::int64_t>{32, 32, 16});  // b keeps all; 48/3 = 16
  CHECK(pr::validate_scheme(s, r) == doctest::Approx(32 + 64 + 48));
  CHECK(pr::scheme_from_ratios(s, {{"a", 0.3}}).widths[0] == 16);  // 19.2 -> nearest multiple of 8 below 64: 16
  CHECK(pr::scheme_from_widths(s, {{"b", 12}}).widths == std::vector<std::int64_t>{64, 12, 48});

  CHECK(message_of([&] {
          pr::scheme_from_ratios(s, {{"d", 0.5}});
        }) == "pruning search space: unknown layer 'd' (layers: a, b, c)");
  CHECK(message_of([&] {
          pr::scheme_from_ratios(s, {{"a", 1.5}});
        }) == "pruning scheme: layer 'a' keep ratio 1.5 is outside (0, 1]");
  CHECK(message_of([&] { pr::scheme_from_ratios(s, {{"a", 0.0}}); }).find("is outside (0, 1]") != std::string::npos);
  CHECK(message_of([&] {
          pr::scheme_from_ratios(s, {{"c", 0.1}});
        }) ==
        "pruning scheme: layer 'c' keep ratio 0.1 keeps 0 channels, fewer than min_width 16 (smallest ratio 0.333333)");
  CHECK(message_of([&] {
          pr::scheme_from_widths(s, {{"b", 10}});
        }) == "pruning scheme: layer 'b' width 10 is not reachable: channels come off in multiples of 4 from 32");
  CHECK(message_of([&] {
          pr::scheme_from_widths(s, {{"c", 64}});
        }) == "pruning scheme: layer 'c' width 64 is outside [min_width 16, width 48]");
  // Full model: 64 + 64 + 144 = 272 <= 300; a = 64, b = 32, c = 48 with limit 250 is over.
  const pr::SearchSpace tight = three_layers(250.0);
  CHECK(message_of([&] { pr::validate_scheme(tight, pr::Scheme::full(tight)); }) ==
        "pruning scheme: 272 FLOPs exceed the group's limit 250 (eq. 9)");
  CHECK_FALSE(pr::is_valid_scheme(tight, pr::Scheme::full(tight)));
  CHECK(pr::is_valid_scheme(tight, r));
}

TEST_CASE("memory bank: JSON round trip through an atomic file, and resumption state") {
  const pr::SearchSpace s = three_layers(250.0);
  ScratchDir dir("bank_round_trip");
  const auto path = dir.path / "bank.json";
  pr::MemoryBank bank = pr::MemoryBank::open(path, s);
  REQUIRE(std::filesystem::exists(path));  // written at once, empty
  const pr::Scheme s1{{32, 32, 16}}, s2{{64, 8, 32}}, s3{{8, 4, 16}};
  bank.begin_round(0, {s1, s2, s3}, s);
  bank.add({s1, 0.1 + 0.2, 144.0, 0, "search"}, s);  // 0.30000000000000004: exact round trip of a double
  bank.add({s2, std::numeric_limits<double>::quiet_NaN(), 176.0, 0, "external"}, s);
  CHECK_THROWS_AS(bank.add({s1, 1.0, 144.0, 0, ""}, s), ConfigError);  // each scheme once

  // The file holds what was added so far, including the unfinished round.
  pr::MemoryBank back = pr::MemoryBank::load(path, s);
  REQUIRE(back.size() == 2);
  CHECK(back.entries()[0].scheme == s1);
  CHECK(back.entries()[0].loss == 0.1 + 0.2);
  CHECK(back.entries()[0].flops == 144.0);
  CHECK(back.entries()[0].source == "search");
  CHECK(std::isnan(back.entries()[1].loss));
  CHECK(back.entries()[1].source == "external");
  CHECK(back.completed_rounds() == 0);
  CHECK(back.pending() == std::vector<pr::Scheme>{s1, s2, s3});
  CHECK(back.best(s) == &back.entries()[0]);  // the NaN entry never wins

  bank.add({s3, 0.5, 88.0, 0, "search"}, s);
  bank.complete_round(0, s);
  back = pr::MemoryBank::load(path, s);
  CHECK(back.completed_rounds() == 1);
  CHECK(back.pending().empty());
  CHECK(back.size() == 3);
  // The file is plain JSON with widths by layer name.
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["format"] == "progdiff.prune.memory_bank");
  CHECK(j["entries"][2]["widths"] == nlohmann::json{{"a", 8}, {"b", 4}, {"c", 16}});
  CHECK(j["entries"][1]["loss"].is_null());
  // No temporary file is left next to it.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("memory bank: malformed or foreign files are FormatErrors naming the file and the place") {
  const pr::SearchSpace s = three_layers();
  ScratchDir dir("bank_errors");
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.path / name) << text;
    return dir.path / name;
  };
  // A truncated file: the error points at line 3, column 14 (the byte after "entries": ).
  const auto cut =
      write("cut.json", "{\"format\": \"progdiff.prune.memory_bank\",\n \"version\": 1,\n \"entries\": [{\"widths\": ");
  const std::string m = message_of([&] { pr::MemoryBank::load(cut, s); });
  CHECK(m.find("memory bank " + cut.string() + ": malformed JSON at line 3") != std::string::npos);
  CHECK_THROWS_AS(pr::MemoryBank::load(cut, s), FormatError);
  const auto comma = write("comma.json", "{\"a\": 1,,\n}");
  CHECK(message_of([&] { pr::MemoryBank::load(comma, s); }).find("malformed JSON at line 1, column 9 (byte 8)") !=
        std::string::npos);
  CHECK_THROWS_AS(pr::MemoryBank::load(dir.path / "missing.json", s), IoError);

  // Written for another model: the layer that differs is named.
  pr::MemoryBank bank;
  bank.add({pr::Scheme{{32, 32, 16}}, 1.0, 144.0, 0, ""}, s);
  const auto good = dir.path / "good.json";
  bank.save(good, s);
  pr::SearchSpace other = s;
  other.layers[1].width = 36;
  CHECK(message_of([&] { pr::MemoryBank::load(good, other); }) ==
        "memory bank " + good.string() + ": layers[1] 'b' has width/step 32/4, the search space has 36/4");
  other = s;
  other.layers[2].name = "conv";
  CHECK(message_of([&] { pr::MemoryBank::load(good, other); }).find("layers[2] is 'c', the search space has 'conv'") !=
        std::string::npos);
  // An entry with a width the layer cannot take.
  nlohmann::json j = bank.to_json(s);
  j["entries"][0]["widths"]["b"] = 30;
  const auto odd = write("odd.json", j.dump());
  CHECK(message_of([&] { pr::MemoryBank::load(odd, s); }) ==
        "memory bank " + odd.string() + ": entries[0].widths: width 30 of layer 'b' is not an allowed width");
}

TEST_CASE("prompt: layers, FLOPs per layer, the limit, the timesteps and the bank, best first") {
  const pr::SearchSpace s = three_layers(250.0);
  pr::MemoryBank bank;
  bank.add({pr::Scheme{{32, 32, 16}}, 0.7, 144.0, 0, ""}, s);
  bank.add({pr::Scheme{{64, 8, 32}}, 0.4, 176.0, 0, ""}, s);
  bank.add({pr::Scheme{{64, 32, 48}}, 0.1, 272.0, 0, ""}, s);  // over the limit 250: not shown
  const pr::ProxyRequest request{s, bank, 2, 5, 3};
  pr::PromptOptions options;
  options.prior_scores = {1.0, 0.5, 2.0};
  const nlohmann::json j = pr::proxy_prompt_json(request, options);
  CHECK(j["flops_limit"] == 250.0);
  CHECK(j["flops_full"] == 272.0);
  CHECK(j["flops_narrowest"] == 8.0 + 8.0 + 48.0);
  CHECK(j["candidates"] == 3);
  CHECK(j["timesteps"]["values"] == std::vector<std::int64_t>{10, 11, 12});
  REQUIRE(j["layers"].size() == 3);
  // FLOPs = sum (i + 1) w_i, so one step of layer i costs (i + 1) * step.
  CHECK(j["layers"][0]["flops_per_step"] == 8.0);
  CHECK(j["layers"][1]["flops_per_step"] == 8.0);
  CHECK(j["layers"][2]["flops_per_step"] == 48.0);
  CHECK(j["layers"][2]["flops_saved_at_min_width"] == 96.0);
  CHECK(j["layers"][1]["prior_score"] == 0.5);
  REQUIRE(j["memory_bank"].size() == 2);
  CHECK(j["memory_bank"][0]["loss"] == 0.4);
  CHECK(j["memory_bank"][0]["keep_ratios"]["b"] == 0.25);
  CHECK(j["memory_bank_not_shown"] == 1);
  const std::string text = pr::proxy_prompt_text(request, options);
  CHECK(text.find("- c: 48, 16, 16, 48, 96, 2") != std::string::npos);
  CHECK(text.find("1. loss 0.4, FLOPs 176: a=1 b=0.25 c=0.6667") != std::string::npos);
  CHECK(text.find("Timesteps of the group: 3 (from 10 to 12)") != std::string::npos);
  CHECK(text.find("{\"schemes\"") != std::string::npos);
}

TEST_CASE("proxy answer: valid answers decode, bad ones are rejected whole with a clear message") {
  const pr::SearchSpace s = three_layers(250.0);
  const auto schemes =
      pr::parse_proxy_answer(s,
                             "Here you are:\n```json\n{\"schemes\": [{\"keep_ratios\": {\"a\": 0.5, \"c\": 0.34}},\n"
                             "{\"widths\": {\"b\": 8, \"c\": 32.0}}]}\n```\n");
  REQUIRE(schemes.size() == 2);
  CHECK(schemes[0].widths == std::vector<std::int64_t>{32, 32, 16});
  CHECK(schemes[1].widths == std::vector<std::int64_t>{64, 8, 32});
  CHECK(pr::parse_proxy_answer(s, "[{\"widths\": {\"a\": 8}}]")[0].widths == std::vector<std::int64_t>{8, 32, 48});

  const auto rejected = [&](const std::string& answer) {
    return message_of([&] { pr::parse_proxy_answer(s, answer); });
  };
  CHECK(rejected("{\"schemes\": [{\"keep_ratios\": {\"a\": 0.5,}}]}") ==
        "proxy answer: malformed JSON at line 1, column 40 (byte 39): syntax error while parsing object key - "
        "unexpected '}'; expected string literal");
  CHECK(rejected("{\"plans\": []}") == "proxy answer: missing key \"schemes\"");
  CHECK(rejected("{\"schemes\": []}") == "proxy answer: the answer holds no scheme");
  // One good scheme and three bad ones: nothing is returned, every problem is listed.
  const std::string m = rejected(
      "{\"schemes\": [{\"keep_ratios\": {\"a\": 0.5}}, {\"keep_ratios\": {\"q\": 0.5}},"
      " {\"keep_ratios\": {\"b\": 0.75}}, {\"widths\": {\"a\": 12}}]}");
  CHECK_THROWS_AS(pr::parse_proxy_answer(s, "[{\"keep_ratios\": {\"q\": 0.5}}]"), ConfigError);
  CHECK(m ==
        "proxy answer: answer rejected, nothing applied:\n"
        "  scheme 1: pruning search space: unknown layer 'q' (layers: a, b, c)\n"
        "  scheme 2: pruning scheme: 256 FLOPs exceed the group's limit 250 (eq. 9)\n"
        "  scheme 3: pruning scheme: layer 'a' width 12 is not reachable: channels come off in multiples of 8 from 64");
}

TEST_CASE("proxy answer: shape errors are FormatErrors") {
  const pr::SearchSpace s = three_layers(250.0);
  const auto rejected = [&](const std::string& answer) {
    return message_of([&] { pr::parse_proxy_answer(s, answer); });
  };
  CHECK_THROWS_AS(pr::parse_proxy_answer(s, "[{\"keep_ratios\": {\"a\": \"half\"}}]"), FormatError);
  CHECK(rejected("[{\"keep_ratios\": {\"a\": \"half\"}}]") ==
        "proxy answer: answer rejected, nothing applied:\n  scheme 0: keep ratio of 'a' is \"half\", not a number");
  CHECK(rejected("[{\"widths\": {\"a\": 8.5}}]").find("width of 'a' is 8.5, not a whole number") != std::string::npos);
  CHECK(rejected("[{\"widths\": {}, \"keep_ratios\": {}}]")
            .find("expected exactly one of the keys \"keep_ratios\" and \"widths\"") != std::string::npos);
  CHECK(rejected("[0.5]").find("scheme 0: expected an object, got number") != std::string::npos);
  CHECK(rejected("{\"schemes\": 3}") ==
        "proxy answer: expected {\"schemes\": [...]} or an array of schemes, got number");
}

TEST_CASE("external proxy: a callback sees the prompt; bad answers are rejected, retried, never applied") {
  const pr::SearchSpace s = three_layers(250.0);
  pr::MemoryBank bank;
  std::vector<std::string> prompts;
  std::vector<std::string> answers{"{\"schemes\": [{\"keep_ratios\": {\"q\": 0.5}}]}",
                                   "{\"schemes\": [{\"keep_ratios\": {\"a\": 0.5}}, {\"widths\": {\"c\": 16}}]}"};
  pr::ExternalProxyOptions options;
  options.attempts = 2;
  options.name = "test model";
  pr::ExternalProxy proxy(
      [&](const std::string& json, const std::string& text) {
        prompts.push_back(text);
        CHECK(nlohmann::json::parse(json)["flops_limit"] == 250.0);
        return answers.at(prompts.size() - 1);
      },
      options);
  const auto schemes = proxy.propose(pr::ProxyRequest{s, bank, 0, 3, 2});
  REQUIRE(prompts.size() == 2);
  CHECK(prompts[1].find("Your previous answer was rejected: test model (round 0, attempt 1): answer rejected, "
                        "nothing applied:\n  scheme 0: pruning search space: unknown layer 'q'") != std::string::npos);
  CHECK(proxy.rejections().size() == 1);
  REQUIRE(schemes.size() == 2);
  CHECK(schemes[1].widths == std::vector<std::int64_t>{64, 32, 16});

  // Out of attempts: the last rejection is thrown, and proxy_prune evaluates nothing.
  pr::ExternalProxy stubborn(
      [](const std::string&, const std::string&) { return std::string("{\"schemes\": [{\"keep_ratios\": {}}]}"); },
      options);  // the full model: over the limit
  int evaluations = 0;
  const std::string m = message_of([&] {
    pr::proxy_prune(
        s, stubborn, [&](const pr::Scheme&) { return ++evaluations; }, 2, 1, bank);
  });
  CHECK(m ==
        "test model (round 0, attempt 2): answer rejected, nothing applied:\n"
        "  scheme 0: pruning scheme: 272 FLOPs exceed the group's limit 250 (eq. 9)");
  CHECK(evaluations == 0);
  CHECK(bank.empty());
  CHECK(bank.completed_rounds() == 0);
}

TEST_CASE("external proxy: a shell command gets the prompt on stdin and in files, answers on stdout") {
  const pr::SearchSpace s = three_layers(250.0);
  ScratchDir dir("command");
  const std::string seen_json = (dir.path / "seen.json").string(), seen_text = (dir.path / "seen.txt").string();
  pr::ExternalProxy proxy =
      pr::ExternalProxy::command("cat > '" + seen_json + "'; cp \"$PROGDIFF_PROMPT_TEXT\" '" + seen_text + "'; cat '" +
                                 (fixtures / "answer_valid.json").string() + "'");
  pr::MemoryBank bank;
  const auto schemes = proxy.propose(pr::ProxyRequest{s, bank, 1, 4, 2});
  REQUIRE(schemes.size() == 2);
  CHECK(schemes[0].widths == std::vector<std::int64_t>{32, 16, 48});
  CHECK(schemes[1].widths == std::vector<std::int64_t>{64, 32, 16});
  std::ifstream json_in(seen_json);
  const nlohmann::json prompt = nlohmann::json::parse(json_in);
  CHECK(prompt["round"] == 1);
  CHECK(prompt["layers"][2]["name"] == "c");
  std::ifstream text_in(seen_text);
  std::stringstream text;
  text << text_in.rdbuf();
  CHECK(text.str().find("Prunable layers") != std::string::npos);

  pr::ExternalProxy over = pr::ExternalProxy::command("cat '" + (fixtures / "answer_over_limit.json").string() + "'");
  const std::string m = message_of([&] { over.propose(pr::ProxyRequest{s, bank, 0, 4, 2}); });
  CHECK(
      m.find("answer rejected, nothing applied:\n  scheme 1: pruning scheme: 256 FLOPs exceed the group's limit 250") !=
      std::string::npos);
  CHECK(m.find("scheme 0") == std::string::npos);  // the valid scheme 0 is not applied either
  CHECK(m.find("external proxy 'cat ") == 0);

  pr::ExternalProxy failing = pr::ExternalProxy::command("echo oops; exit 3");
  CHECK(message_of([&] {
          failing.propose(pr::ProxyRequest{s, bank, 0, 4, 2});
        }) == "external proxy: command echo oops; exit 3 failed (exit status 3)");
  CHECK_THROWS_AS(failing.propose(pr::ProxyRequest{s, bank, 0, 4, 2}), IoError);
}

TEST_CASE("proxy_prune: every proposal is validated before any is evaluated; duplicates are skipped") {
  const pr::SearchSpace s = three_layers(250.0);
  pr::MemoryBank bank;
  ScriptedProxy proxy;
  const pr::Scheme ok1{{32, 32, 16}}, ok2{{64, 8, 32}}, over{{64, 32, 48}};
  proxy.rounds = {{ok1, ok2}, {ok2, ok1}, {ok1, over}};
  std::vector<pr::Scheme> evaluated;
  const auto loss = [&](const pr::Scheme& x) {
    evaluated.push_back(x);
    return static_cast<double>(x.widths[0] + x.widths[2]);
  };
  const auto r = pr::proxy_prune(s, proxy, loss, 2, 2, bank);
  CHECK(evaluated == std::vector<pr::Scheme>{ok1, ok2});
  CHECK(r.evaluated == 2);
  CHECK(r.skipped == 2);
  CHECK(r.best == ok1);
  CHECK(r.loss == 48.0);
  CHECK(r.flops == 144.0);
  CHECK(bank.completed_rounds() == 2);
  CHECK(bank.entries()[1].round == 0);
  // Round 2 proposes a scheme over the limit: nothing of the round is evaluated.
  CHECK(message_of([&] { pr::proxy_prune(s, proxy, loss, 3, 2, bank); }) ==
        "proxy_prune: round 2, candidate 1 rejected, no scheme of this round evaluated: pruning scheme: 272 FLOPs "
        "exceed the group's limit 250 (eq. 9)");
  CHECK(evaluated.size() == 2);
  CHECK(bank.completed_rounds() == 2);
  // Rounds already completed are not asked for again.
  const std::size_t calls = proxy.calls;
  CHECK(pr::proxy_prune(s, proxy, loss, 2, 2, bank).evaluated == 0);
  CHECK(proxy.calls == calls);
}

namespace {
// Wraps a proxy and checks each proposal against the test's own FLOPs sum and width grid.
struct CheckedProxy {
  pr::SearchProxy inner;
  const Synthetic* problem;
  std::size_t proposals = 0, over_limit = 0, off_grid = 0;
  std::vector<pr::Scheme> propose(const pr::ProxyRequest& r) {
    auto out = inner.propose(r);
    for (const auto& s : out) {
      ++proposals;
      if (problem->flops(s) > problem->space.flops_limit) ++over_limit;
      for (std::size_t i = 0; i < s.widths.size(); ++i) {
        const auto& l = problem->space.layers[i];
        if (s.widths[i] < l.min_width || s.widths[i] > l.width || (l.width - s.widths[i]) % l.step != 0) ++off_grid;
      }
    }
    return out;
  }
};
}  // namespace

TEST_CASE("search proxy: near the exact optimum of sum c_i / w_i under a FLOPs limit, never over it") {
  for (const double fraction : {0.3, 0.45, 0.7}) {
    CAPTURE(fraction);
    const Synthetic p = eight_layers(fraction);
    const double exact = p.discrete_optimum();
    CHECK(exact >= p.continuous_optimum() * (1 - 1e-12));  // the discrete optimum cannot beat the relaxation
    for (const std::uint64_t seed : {1u, 2u, 3u}) {
      CAPTURE(seed);
      pr::SearchProxyOptions options;
      options.seed = seed;
      CheckedProxy proxy{pr::SearchProxy(options), &p};
      pr::MemoryBank bank;
      const auto r = pr::proxy_prune(
          p.space, proxy, [&](const pr::Scheme& s) { return p.loss(s); }, 25, 8, bank);
      MESSAGE("limit " << fraction << " seed " << seed << ": found " << r.loss << ", exact " << exact << ", continuous "
                       << p.continuous_optimum() << ", gap " << (r.loss / exact - 1) * 100 << "%, evaluated "
                       << r.evaluated);
      CHECK(proxy.over_limit == 0);
      CHECK(proxy.off_grid == 0);
      CHECK(r.loss >= exact * (1 - 1e-12));
      CHECK(r.loss <= exact * 1.001);  // within 0.1% of the exact optimum after at most 200 evaluations
      CHECK(p.flops(r.best) <= p.space.flops_limit);
    }
  }
}

TEST_CASE("search proxy: the same seed gives the same search; another seed another") {
  const Synthetic p = eight_layers();
  const auto run = [&](std::uint64_t seed) {
    pr::SearchProxyOptions options;
    options.seed = seed;
    pr::SearchProxy proxy(options);
    pr::MemoryBank bank;
    pr::proxy_prune(
        p.space, proxy, [&](const pr::Scheme& s) { return p.loss(s); }, 6, 5, bank);
    std::vector<pr::Scheme> schemes;
    for (const auto& e : bank.entries()) schemes.push_back(e.scheme);
    return schemes;
  };
  const auto a = run(7), b = run(7), c = run(8);
  CHECK(a.size() == 30);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("search proxy: prior scores seed the first round") {
  const Synthetic p = eight_layers();
  // The optimum keeps w_i proportional to sqrt(c_i / f_i): keep ratios proportional to sqrt(c_i / f_i) / width_i.
  std::vector<double> prior;
  for (std::size_t i = 0; i < p.c.size(); ++i)
    prior.push_back(std::sqrt(p.c[i] / static_cast<double>(p.f[i])) / static_cast<double>(p.space.layers[i].width));
  const auto first_round = [&](std::vector<double> scores) {
    pr::SearchProxyOptions options;
    options.prior_scores = std::move(scores);
    pr::SearchProxy proxy(options);
    pr::MemoryBank bank;
    return pr::proxy_prune(
               p.space, proxy, [&](const pr::Scheme& s) { return p.loss(s); }, 1, 4, bank)
        .loss;
  };
  const double exact = p.discrete_optimum();
  const double with_prior = first_round(prior), without = first_round({});
  MESSAGE("first round: with prior " << with_prior / exact << " x optimum, without " << without / exact);
  CHECK(with_prior <= exact * 1.01);
  CHECK(without > exact * 1.05);
  pr::SearchProxyOptions bad;
  bad.prior_scores = {1.0, 2.0};
  pr::SearchProxy proxy(bad);
  pr::MemoryBank bank;
  CHECK(message_of([&] {
          proxy.propose(pr::ProxyRequest{p.space, bank, 0, 1, 2});
        }) == "SearchProxy: 2 prior scores for 8 layers");
}

TEST_CASE("proxy_prune: an interrupted search resumes from its bank file and ends as an uninterrupted one") {
  const Synthetic p = eight_layers();
  ScratchDir dir("resume");
  const auto loss = [&](const pr::Scheme& s) { return p.loss(s); };
  pr::SearchProxyOptions options;
  options.seed = 11;

  pr::MemoryBank reference_bank;
  pr::SearchProxy reference_proxy(options);
  const auto reference = pr::proxy_prune(p.space, reference_proxy, loss, 5, 6, reference_bank);

  // Interrupt in the middle of round 2 (the 15th evaluation throws), then resume twice.
  struct Interrupted {};
  int calls = 0;
  {
    pr::MemoryBank bank = pr::MemoryBank::open(dir.path / "bank.json", p.space);
    pr::SearchProxy proxy(options);
    CHECK_THROWS_AS(pr::proxy_prune(
                        p.space, proxy,
                        [&](const pr::Scheme& s) {
                          if (++calls == 15) throw Interrupted{};
                          return loss(s);
                        },
                        5, 6, bank),
                    Interrupted);
  }
  pr::MemoryBank bank = pr::MemoryBank::open(dir.path / "bank.json", p.space);
  CHECK(bank.size() == 14);
  CHECK(bank.completed_rounds() == 2);
  CHECK(bank.pending().size() == 6);
  pr::SearchProxy proxy(options);
  int resumed_calls = 0;
  const auto r = pr::proxy_prune(
      p.space, proxy,
      [&](const pr::Scheme& s) {
        ++resumed_calls;
        return loss(s);
      },
      5, 6, bank);
  CHECK(static_cast<std::size_t>(resumed_calls) + 14 == reference.evaluated);
  CHECK(r.best == reference.best);
  CHECK(r.loss == reference.loss);
  REQUIRE(bank.size() == reference_bank.size());
  for (std::size_t k = 0; k < bank.size(); ++k) CHECK(bank.entries()[k].scheme == reference_bank.entries()[k].scheme);
  // A rerun of the finished search evaluates nothing.
  pr::MemoryBank again = pr::MemoryBank::open(dir.path / "bank.json", p.space);
  CHECK(pr::proxy_prune(
            p.space, proxy, [&](const pr::Scheme&) -> double { throw Interrupted{}; }, 5, 6, again)
            .evaluated == 0);
}

TEST_CASE("proxy_prune refuses an evaluation sharing it cannot use, before asking the proxy") {
  const pr::SearchSpace space = three_layers();
  ScriptedProxy proxy{{{pr::Scheme{{8, 4, 16}}}}};
  pr::MemoryBank bank;
  const auto evaluate = [](const pr::Scheme&) { return 1.0; };
  pr::EvaluationSharing no_sum;  // two processes, but no way to add over them
  no_sum.size = 2;
  CHECK_THROWS_WITH_AS(pr::proxy_prune(space, proxy, evaluate, 1, 1, bank, "scripted", no_sum),
                       doctest::Contains("needs 0 <= rank < size and, for more than one process, a sum"),
                       progdiff::ConfigError);
  pr::EvaluationSharing bad_rank;
  bad_rank.rank = 2;
  bad_rank.size = 2;
  bad_rank.sum_over_processes = [](std::span<double>) {};
  CHECK_THROWS_WITH_AS(pr::proxy_prune(space, proxy, evaluate, 1, 1, bank, "scripted", bad_rank),
                       doctest::Contains("(rank 2, size 2)"), progdiff::ConfigError);
  CHECK(proxy.calls == 0);
}

}  // namespace progdiff_tests_proxy
