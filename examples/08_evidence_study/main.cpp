// The evidence study: do progressive models pay off at equal training compute?
//
// Runs the main job (apps/progressive) once per arm and seed, every run with
// --equal-compute (the training FLOPs of stage 1 and stage 2 of the copies, forward + backward
// over every image seen, pruning evaluations included), the same DDIM sampler and step count,
// one shared classifier for the Frechet distance, and the validation images held out of the
// training split for every choice. The arms:
//
//   unified            one U-Net for every timestep
//   separate           one U-Net per group, trained from scratch (multi-stage paper, Table 3)
//   multi-stage-od     shared encoder + per-group decoders on Algorithm 1's intervals
//   multi-stage-flops  the same on the FLOPs-interval groups
//   copies             stage 1, then a fine-tuned copy per group (step-adaptive paper, Table 2)
//   tdc-proxy          stage 1, then per group pruned to the eq. 8 budget by the proxy search
//   tdc-magnitude      the same pruned by weight magnitude
//
// Over several processes, the MPI build of this program (progdiff_example_08_evidence_study_mpi)
// under mpirun shares the runs among the ranks (study_ranks.hpp), with the same results.
//
// Resumable arm by arm and seed by seed: each run keeps its checkpoints in <out>/<arm>/seed<s>/
// and marks itself finished with result.json (written atomically by the job); a rerun skips
// finished runs and resumes the others from their checkpoints. After every run the tables
// results.md and results.csv are written again from whatever has finished. Exit status 1 when a
// run failed or a finished run's numbers are not finite, 2 on bad flags, 77 when the data set
// is missing.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/io/line_plot.hpp"
#include "study_ranks.hpp"

namespace {

#ifdef PROGDIFF_DEFAULT_JOB
constexpr const char* kDefaultJob = PROGDIFF_DEFAULT_JOB;
#else
constexpr const char* kDefaultJob = "progdiff_progressive";
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Arm {
  std::string name;
  std::string flags;       // the main job's flags of the arm
  std::string what;        // one line for the table
  bool by_default = true;  // run when --arms is not given
};

const std::vector<Arm>& all_arms() {
  static const std::vector<Arm> arms{
      {"unified", "--variant unified", "one U-Net for every timestep"},
      {"separate", "--variant separate", "one U-Net per FLOPs-interval group, from scratch"},
      {"multi-stage-od", "--variant multi-stage --grouping optimal-denoiser",
       "shared encoder + decoders, Algorithm 1's intervals"},
      {"multi-stage-flops", "--variant multi-stage --grouping flops",
       "shared encoder + decoders, FLOPs-interval groups"},
      {"copies", "--variant experts", "stage 1, then a fine-tuned copy per group (no pruning)"},
      {"tdc-proxy", "--tdc --pruning proxy", "stage 1, pruned per group by the proxy search, fine-tuned"},
      {"tdc-magnitude", "--tdc --pruning magnitude", "stage 1, pruned per group by magnitude, fine-tuned"},
      // The papers' base models (--objective, --arch): asked for by name.
      {"unified-hybrid", "--variant unified --objective hybrid --nll-images 500",
       "one U-Net, IDDPM's hybrid objective and learned variance, cosine schedule", false},
      {"unified-edm", "--variant unified --objective edm", "one U-Net, EDM's preconditioning, loss and Heun sampler",
       false},
      {"multi-stage-edm", "--variant multi-stage --grouping flops --objective edm",
       "shared encoder + decoders (FLOPs-interval groups), EDM", false},
      {"unified-edm-sd", "--variant unified --objective edm --sigma-data data",
       "one U-Net, EDM with sigma_data measured on the training pixels", false},
      // sigma_data as the spread about zero that EDM's derivation assumes of its data: Fashion-MNIST's
      // padded pixels have mean -0.56, so their root mean square (0.87) is well above their standard
      // deviation (0.66), and with 0.5 the targets at high noise have a second moment of about 3.
      {"unified-edm-rms", "--variant unified --objective edm --sigma-data rms",
       "one U-Net, EDM with sigma_data the training pixels' root mean square", false},
      // The remedy for EDM's weak start: the network's noise input on the range its timestep
      // embedding is built for (sigma's grid timestep) instead of ln(sigma) / 4.
      {"unified-edm-grid", "--variant unified --objective edm --edm-noise-label grid-timestep",
       "one U-Net, EDM with sigma's grid timestep as the network's noise input", false},
      // The remedy for EDM's few high-noise draws: its training noise levels' log-normal matched to
      // the VP recipe's (ln sigma over the linear schedule's uniform timesteps: mean 1.35, standard
      // deviation 1.94), against EDM's -1.2 and 1.2, which put 3% of the draws above sigma = 3.
      {"unified-edm-vp-levels", "--variant unified --objective edm --edm-p-mean 1.35 --edm-p-std 1.94",
       "one U-Net, EDM with the VP recipe's spread of training noise levels", false},
      {"tdc-edm", "--tdc --pruning magnitude --objective edm",
       "stage 1 on EDM, pruned per group by magnitude, fine-tuned with EDM's loss", false},
      // The remedy for TDC's fine-tuning: stage 1 shorter, the groups' fine-tuning longer, at the
      // same training FLOPs.
      {"tdc-proxy-long", "--tdc --pruning proxy --stage1-share 0.4",
       "tdc-proxy with stage 1 at 0.4 of the plan's steps, the rest to fine-tuning", false},
      {"tdc-magnitude-long", "--tdc --pruning magnitude --stage1-share 0.4",
       "tdc-magnitude with stage 1 at 0.4 of the plan's steps, the rest to fine-tuning", false},
  };
  return arms;
}

struct Options {
  bool tiny = false;
  std::int64_t seeds = 3, first_seed = 0;
  std::int64_t fid_samples = 2000;
  std::vector<std::string> arms;  // empty: all
  fs::path out = "evidence_study";
  fs::path job;         // empty: progdiff_progressive of the same build (kDefaultJob)
  fs::path classifier;  // empty: <out>/fashion_classifier.safetensors
  std::string proxy_command;
  std::string job_flags;             // more flags for every run (e.g. --steps 2000 --stage2-steps 400)
  std::vector<double> budgets{1.0};  // training budgets as multiples of the job's (--budget-scale)
};

const char* kDescription =
    "Runs the main job (progdiff_progressive) for each arm and seed at equal training FLOPs and\n"
    "writes results.md and results.csv to the output directory: Frechet distance (mean and std over\n"
    "seeds), per-group test loss, training FLOPs, sampling FLOPs per image, wall time. A rerun skips\n"
    "finished runs and resumes unfinished ones from their checkpoints. Defaults shown are those of\n"
    "the configuration chosen (--tiny or not).";

const char* kFooter =
    "--job-flags takes the job's flags as one value; write it with '=' (--job-flags=\"--steps 4000\n"
    "--stage2-steps 800\"), so that no parser reads a value that starts with -- as a flag of its own.\n"
    "\n"
    "Over MPI ranks (the _mpi build of this program, where MPI is installed): run i of the study's\n"
    "order goes to rank i % size, on a file system every rank sees; rank 0 writes the tables, e.g.\n"
    "  OMP_NUM_THREADS=1 mpirun -np 2 progdiff_example_08_evidence_study_mpi --seeds 3 --out DIR";

/// The items of a comma-separated list ("a,b" -> a, b; an empty item stays).
std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) items.push_back(item);
  return items;
}

/// "" when every name of the list is an arm, else the message naming the first that is not.
std::string check_arms(const std::string& list) {
  const auto& arms = all_arms();
  for (const std::string& name : split_list(list))
    if (std::none_of(arms.begin(), arms.end(), [&](const Arm& arm) { return arm.name == name; })) {
      std::string names;
      for (const auto& arm : arms) names += (names.empty() ? "" : ", ") + arm.name;
      return "unknown arm '" + name + "' (choose from " + names + ")";
    }
  return "";
}

/// The budget multiples of the list, each in (0, 1000]; throws ConfigError naming a bad one.
std::vector<double> parse_budgets(const std::string& list) {
  std::vector<double> budgets;
  for (const std::string& b : split_list(list)) {
    char* end = nullptr;
    const double x = std::strtod(b.c_str(), &end);
    if (b.empty() || *end != '\0' || !(x > 0.0) || x > 1e3)
      throw progdiff::ConfigError("--budgets: '" + b + "' is not a budget multiple in (0, 1000]");
    budgets.push_back(x);
  }
  if (budgets.empty()) throw progdiff::ConfigError("--budgets: the list is empty");
  return budgets;
}

/// CLI11's check that an integer is at least lo; --help says ">= lo".
CLI::Validator at_least(std::int64_t lo) {
  return CLI::Range(lo, std::numeric_limits<std::int64_t>::max()).description(">= " + std::to_string(lo));
}

/// The flags of `o` on `app`; `o` holds the configuration's defaults, which --help shows.
void add_flags(CLI::App& app, Options& o, std::string& arms, std::string& budgets) {
  app.add_flag("--tiny", o.tiny, "the CI configuration: the job's --tiny, 2 seeds (well under a minute)");
  app.add_option("--seeds", o.seeds, "seeds per arm")->check(at_least(1))->capture_default_str();
  app.add_option("--first-seed", o.first_seed, "the first seed")->check(at_least(0))->capture_default_str();
  app.add_option("--arms", arms,
                 "A,B,...: a subset of unified, separate, multi-stage-od, multi-stage-flops, copies, tdc-proxy, "
                 "tdc-magnitude (default: these seven); and the papers' base models: unified-hybrid, unified-edm, "
                 "multi-stage-edm, unified-edm-sd, unified-edm-rms, unified-edm-grid, unified-edm-vp-levels, tdc-edm; "
                 "TDC with a longer "
                 "fine-tuning: tdc-proxy-long, "
                 "tdc-magnitude-long")
      ->check(CLI::Validator(check_arms, "A,B,..."));
  app.add_option("--fid-samples", o.fid_samples, "generated images for the Frechet distance")
      ->check(at_least(2))
      ->capture_default_str();
  app.add_option("--proxy-command", o.proxy_command,
                 "the tdc-proxy arm asks this command instead of the built-in search (tools/proxy/echo_proxy.py is "
                 "an offline example)");
  app.add_option("--budgets", budgets,
                 "B,B,...: training budgets as multiples of the job's default (its --budget-scale), e.g. "
                 "0.25,0.5,1,2,4 for the convergence of FD against training FLOPs; budget 1 runs in DIR, budget B "
                 "in DIR/budget-B; convergence.csv and convergence.png (gnuplot) gather them")
      ->capture_default_str();
  app.add_option("--job-flags", o.job_flags,
                 "more flags for every run of the job (the same for every arm), as one value: "
                 "--job-flags=\"--steps 4000 --stage2-steps 800\"");
  app.add_option("--job", o.job,
                 "the main job's program (default: progdiff_progressive of this build, or beside this program)");
  app.add_option("--classifier", o.classifier,
                 "the metric's classifier, shared by every run (default <out>/fashion_classifier.safetensors, "
                 "trained by the first run)");
  app.add_option("--out", o.out, "output directory")->capture_default_str();
}

/// The options of argv. Throws CLI::ParseError for what CLI11 checks (--help included:
/// CLI::CallForHelp) and ConfigError, naming the flag, for the rest.
Options parse(CLI::App& app, int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--tiny") o.tiny = true, o.seeds = 2, o.fid_samples = 32;
  std::string arms, budgets = "1";
  add_flags(app, o, arms, budgets);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    // "--job-flags --steps 4000" gives the job "--steps" and leaves "4000" over: say how to write it.
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--job-flags")
        throw progdiff::ConfigError(std::string(e.what()) +
                                    "; --job-flags takes the job's flags as one value: --job-flags=\"--steps 4000\"");
    throw;
  }
  if (app.count("--arms") > 0) o.arms = split_list(arms);
  o.budgets = parse_budgets(budgets);
  return o;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

void write_atomic(const fs::path& path, const std::string& text) {
  progdiff::io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

std::optional<nlohmann::json> read_json(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) throw progdiff::FormatError(path.string() + " is not valid JSON (remove it to redo the run)");
  return j;
}

double number(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}

struct Stats {
  double mean = std::nan(""), std = std::nan("");
  std::size_t n = 0;
};

// Mean and sample standard deviation of the finite values.
Stats stats(const std::vector<double>& v) {
  Stats s;
  double sum = 0.0;
  for (double x : v)
    if (std::isfinite(x)) sum += x, ++s.n;
  if (s.n == 0) return s;
  s.mean = sum / static_cast<double>(s.n);
  double sq = 0.0;
  for (double x : v)
    if (std::isfinite(x)) sq += (x - s.mean) * (x - s.mean);
  s.std = s.n > 1 ? std::sqrt(sq / static_cast<double>(s.n - 1)) : std::nan("");
  return s;
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string mean_std(const Stats& s, int digits) {
  return fixed(s.mean, digits) + (std::isfinite(s.std) ? " ± " + fixed(s.std, digits) : "");
}

fs::path run_dir(const Options& o, const std::string& arm, std::int64_t seed) {
  return o.out / arm / ("seed" + std::to_string(seed));
}

// The study's record of a run: wall seconds summed over every attempt (a resumed run counts
// the time of each attempt), and the attempts.
struct Attempts {
  double seconds = 0.0;
  std::int64_t count = 0;
};

Attempts read_attempts(const fs::path& dir) {
  Attempts a;
  if (auto j = read_json(dir / "study_attempts.json")) a.seconds = number(*j, "seconds"), a.count = (*j)["count"];
  return a;
}

// The seeds a table lists for `arm`: those asked for, and every other seed with a finished run
// in the same --out, so that a later run of some arms or seeds keeps the earlier ones' rows.
std::vector<std::int64_t> table_seeds(const Options& o, const std::string& arm) {
  std::set<std::int64_t> seeds;
  for (std::int64_t s = o.first_seed; s < o.first_seed + o.seeds; ++s) seeds.insert(s);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(o.out / arm, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("seed", 0) != 0 || name.size() == 4 ||
        name.find_first_not_of("0123456789", 4) != std::string::npos || !fs::exists(entry.path() / "result.json"))
      continue;
    seeds.insert(std::stoll(name.substr(4)));
  }
  return {seeds.begin(), seeds.end()};
}

// The arms a table lists: those asked for, and every other arm with a finished run in --out.
std::vector<Arm> table_arms(const Options& o, const std::vector<Arm>& asked) {
  std::vector<Arm> arms;
  for (const Arm& arm : all_arms()) {
    const bool is_asked = std::any_of(asked.begin(), asked.end(), [&](const Arm& a) { return a.name == arm.name; });
    const auto seeds = table_seeds(o, arm.name);
    const bool has_run = std::any_of(seeds.begin(), seeds.end(), [&](std::int64_t s) {
      return fs::exists(run_dir(o, arm.name, s) / "result.json");
    });
    if (is_asked || has_run) arms.push_back(arm);
  }
  return arms;
}

// results.md and results.csv from every finished run in --out (the arms and seeds asked for, and
// any others finished earlier); returns false when a finished run's numbers are not finite.
bool write_tables(const Options& o, const std::vector<Arm>& asked, const std::string& command) {
  const std::vector<Arm> arms = table_arms(o, asked);
  bool ok = true;
  std::ostringstream csv, md;
  csv << "arm,seed,frechet,frechet_floor,fid_samples,test_loss_mean,test_loss_per_group,training_flops,"
         "sampling_flops_per_image,average_flops,parameters,wall_seconds,attempts,groups\n";
  md << "# Evidence study: progressive models at equal training compute\n\n";
  md << "Written by `examples/08_evidence_study` from the runs finished so far. Command:\n\n    " << command << "\n\n";
  md << "Every run is the main job (`apps/progressive`) with `--equal-compute`: its training FLOPs "
        "(forward + backward, the backward counted as twice the forward, over every training image seen, "
        "stage 1 and stage 2, plus the forward passes of the pruning's evaluations) match those of stage 1 and "
        "stage 2 of the copies. The last validation images of the training split are held out of training and "
        "score every choice; the test split gives these numbers only. Frechet distance: generated images "
        "against the test split in the features of one Fashion-MNIST classifier shared by every run (same DDIM "
        "sampler and step count for all). Test loss: noise MSE on the test split, averaged over the timesteps "
        "(per group: on each arm's own groups).\n\n";
  md << "| arm | what | seeds done | Frechet distance (mean ± std) | test MSE (mean ± std) | per-group test MSE "
        "(means) "
        "| training GFLOPs | vs unified | sampling MFLOPs / image | wall s / run |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|\n";
  std::map<std::int64_t, double> unified_flops;
  for (std::int64_t s : table_seeds(o, "unified"))
    if (auto r = read_json(run_dir(o, "unified", s) / "result.json")) unified_flops[s] = number(*r, "training_flops");
  for (const Arm& arm : arms) {
    std::vector<double> fd, loss, flops, sampling, wall, ratio;
    std::vector<std::vector<double>> group_loss;
    const std::vector<std::int64_t> seeds = table_seeds(o, arm.name);
    for (std::int64_t s : seeds) {
      const fs::path dir = run_dir(o, arm.name, s);
      const auto r = read_json(dir / "result.json");
      if (!r) continue;
      const Attempts a = read_attempts(dir);
      fd.push_back(number(*r, "frechet"));
      loss.push_back(number(*r, "test_loss_mean"));
      flops.push_back(number(*r, "training_flops"));
      sampling.push_back(number(*r, "sampling_flops_per_image"));
      wall.push_back(a.seconds);
      if (unified_flops.count(s)) ratio.push_back(flops.back() / unified_flops[s]);
      std::string per_group;
      const auto& tl = (*r)["test_loss"];
      for (std::size_t g = 0; g < tl.size(); ++g) {
        const double v = tl[g].is_number() ? tl[g].get<double>() : std::nan("");
        if (group_loss.size() <= g) group_loss.resize(g + 1);
        group_loss[g].push_back(v);
        per_group += (g ? ";" : "") + fixed(v, 6);
      }
      if (!std::isfinite(fd.back()) || !std::isfinite(loss.back()) || !(flops.back() > 0)) {
        std::fprintf(stderr, "check failed: %s seed %lld has a number that is not finite\n", arm.name.c_str(),
                     static_cast<long long>(s));
        ok = false;
      }
      std::string starts;
      for (const auto& v : (*r)["starts"]) {
        if (!starts.empty()) starts += ';';  // appended alone: GCC 12 warns falsely on ("" + string) (-Wrestrict)
        starts += std::to_string(v.get<long long>());
      }
      csv << arm.name << "," << s << "," << fixed(fd.back(), 6) << "," << fixed(number(*r, "frechet_floor"), 6) << ","
          << (*r)["frechet_samples"].get<long long>() << "," << fixed(loss.back(), 6) << "," << per_group << ","
          << fixed(flops.back(), 0) << "," << fixed(sampling.back(), 0) << "," << fixed(number(*r, "average_flops"), 0)
          << "," << (*r)["parameters"].get<long long>() << "," << fixed(a.seconds, 1) << "," << a.count << "," << starts
          << "\n";
    }
    std::string per_group;
    for (std::size_t g = 0; g < group_loss.size(); ++g)
      per_group += (g ? ", " : "") + fixed(stats(group_loss[g]).mean, 5);
    const Stats r = stats(ratio);
    md << "| " << arm.name << " | " << arm.what << " | " << fd.size() << " / " << seeds.size() << " | "
       << mean_std(stats(fd), 3) << " | " << mean_std(stats(loss), 5) << " | "
       << (per_group.empty() ? "n/a" : per_group) << " | " << fixed(stats(flops).mean / 1e9, 1) << " | "
       << (r.n ? fixed(r.mean, 3) : std::string("n/a")) << " | " << fixed(stats(sampling).mean / 1e6, 1) << " | "
       << fixed(stats(wall).mean, 0) << " |\n";
  }
  md << "\nPer-run numbers, with each run's group boundaries: `results.csv`. Each run's report, logs and "
        "checkpoints: `<arm>/seed<s>/` (report.md there).\n";
  write_atomic(o.out / "results.md", md.str());
  write_atomic(o.out / "results.csv", csv.str());
  return ok;
}

std::string budget_name(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
}

// The study's options for one training budget: budget 1 in --out, budget B in --out/budget-B.
Options for_budget(const Options& o, double b) {
  Options ob = o;
  if (b != 1.0) {
    ob.out = o.out / ("budget-" + budget_name(b));
    ob.job_flags += " --budget-scale " + budget_name(b);
  }
  return ob;
}

// convergence.csv and convergence.png: per arm and budget, the mean training FLOPs and the
// Frechet distance (mean, std over the seeds finished so far).
void write_convergence(const Options& o, const std::vector<Arm>& arms) {
  std::ostringstream csv;
  csv << "arm,budget,seeds,training_flops_mean,frechet_mean,frechet_std\n";
  std::vector<progdiff::io::LineSeries> series;
  for (std::size_t a = 0; a < arms.size(); ++a) {
    progdiff::io::LineSeries line{arms[a].name, {}, {}, progdiff::io::series_color(a)};
    for (double b : o.budgets) {
      const Options ob = for_budget(o, b);
      std::vector<double> fd, flops;
      for (std::int64_t s = o.first_seed; s < o.first_seed + o.seeds; ++s)
        if (auto r = read_json(run_dir(ob, arms[a].name, s) / "result.json")) {
          fd.push_back(number(*r, "frechet"));
          flops.push_back(number(*r, "training_flops"));
        }
      const Stats f = stats(fd), c = stats(flops);
      csv << arms[a].name << "," << budget_name(b) << "," << f.n << "," << fixed(c.mean, 0) << "," << fixed(f.mean, 6)
          << "," << fixed(f.std, 6) << "\n";
      if (f.n > 0) {
        line.x.push_back(c.mean / 1e9);
        line.y.push_back(f.mean);
      }
    }
    if (!line.x.empty()) series.push_back(std::move(line));
  }
  write_atomic(o.out / "convergence.csv", csv.str());
  progdiff::io::PlotOptions po;
  po.width = 800, po.height = 480, po.line_width = 2, po.log_x = true;
  po.x_label = "training GFLOPs (mean over seeds)", po.y_label = "Frechet distance (mean over seeds)";
  if (!progdiff::io::write_line_plot((o.out / "convergence.png").string(), series, po))
    std::printf("no gnuplot: convergence.png not drawn (convergence.csv has the numbers)\n");
}

// The arms --arms names, in the study's order (all of them without --arms).
std::vector<Arm> asked_arms(const Options& o) {
  std::vector<Arm> arms;
  for (const Arm& arm : all_arms())
    if (o.arms.empty() ? arm.by_default : std::find(o.arms.begin(), o.arms.end(), arm.name) != o.arms.end())
      arms.push_back(arm);
  return arms;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef PROGDIFF_STUDY_OVER_MPI
  progdiff::distributed::MpiSession session(argc, argv);
  progdiff::distributed::MpiCommunicator comm;
  const study::Ranks ranks = study::mpi_ranks(comm);
#else
  const study::Ranks ranks;
#endif
  CLI::App app{kDescription, "progdiff_example_08_evidence_study"};
  app.footer(kFooter);
  Options o;
  try {
    o = parse(app, argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return ranks.rank == 0 ? app.exit(e) : 0;  // --help, printed once
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  std::string command = "progdiff_example_08_evidence_study";
  for (int i = 1; i < argc; ++i) command += " " + std::string(argv[i]);
  const std::string who = ranks.size > 1 ? "[rank " + std::to_string(ranks.rank) + "] " : "";
  // Every rank reaches each collective step below, whatever fails on it, so none waits forever.
  bool ok = true, skipped = false, failed = false;
  try {
    fs::create_directories(o.out);
    const fs::path out = fs::absolute(o.out);
    fs::path job = o.job;
    if (job.empty()) {
      // The build tells where it put the job; a copied pair of programs keeps them side by side.
      const fs::path beside = fs::absolute(fs::path(argv[0])).parent_path() / "progdiff_progressive";
      job = fs::exists(beside) ? beside : fs::path(kDefaultJob);
    }
    if (!fs::exists(job))
      throw progdiff::ConfigError("the main job " + job.string() +
                                  " does not exist (build progdiff_progressive, or give --job)");
    const fs::path classifier =
        o.classifier.empty() ? out / "fashion_classifier.safetensors" : fs::absolute(o.classifier);
    const std::vector<Arm> arms = asked_arms(o);

    // Seed by seed, so that an interrupted study has whole seeds of every arm first; within a
    // seed, budget by budget in the order given.
    struct Run {
      std::int64_t seed;
      double budget;
      const Arm* arm;
    };
    std::vector<Run> plan;
    for (std::int64_t seed = o.first_seed; seed < o.first_seed + o.seeds; ++seed)
      for (double budget : o.budgets)
        for (const Arm& arm : arms) plan.push_back({seed, budget, &arm});
    // The first run trains the shared classifier when there is none yet: over several ranks it
    // runs alone (on rank 0) and the others wait for it, rather than each training its own.
    const bool classifier_first = ranks.size > 1 && !fs::exists(classifier);

    for (std::size_t i = 0; i < plan.size() && !skipped; ++i) {
      const Run& run = plan[i];
      if (ranks.owns(i)) {
        const Options ob = for_budget(o, run.budget);
        const Arm& arm = *run.arm;
        const fs::path dir = run_dir(ob, arm.name, run.seed);
        const std::string what = arm.name + " seed " + std::to_string(run.seed) +
                                 (run.budget != 1.0 ? " budget " + budget_name(run.budget) : std::string());
        if (fs::exists(dir / "result.json")) {
          std::printf("%s== %s: finished earlier\n", who.c_str(), what.c_str());
        } else {
          fs::create_directories(dir);
          std::string flags = arm.flags + " --equal-compute --seed " + std::to_string(run.seed) + " --out " +
                              quote(fs::absolute(dir).string()) + " --classifier " + quote(classifier.string()) +
                              " --fid-samples " + std::to_string(o.fid_samples);
          if (o.tiny) flags = "--tiny " + flags;
          if (arm.name == "tdc-proxy" && !o.proxy_command.empty())
            flags += " --proxy-command " + quote(o.proxy_command);
          if (!ob.job_flags.empty()) flags += " " + ob.job_flags;
          const std::string line = quote(job.string()) + " " + flags;
          std::printf("%s== %s: %s\n", who.c_str(), what.c_str(), line.c_str());
          std::fflush(stdout);
          const auto start = Clock::now();
          const int status = std::system((line + " >> " + quote((dir / "job.log").string()) + " 2>&1").c_str());
          Attempts a = read_attempts(dir);
          a.seconds += std::chrono::duration<double>(Clock::now() - start).count();
          a.count += 1;
          write_atomic(dir / "study_attempts.json",
                       nlohmann::json{{"seconds", a.seconds}, {"count", a.count}, {"command", line}}.dump(2) + "\n");
          const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
          if (code == 77) {
            std::fprintf(stderr, "%sskipped: the main job reports a missing data set (see %s)\n", who.c_str(),
                         (dir / "job.log").string().c_str());
            skipped = true;
          } else if (code != 0 || !fs::exists(dir / "result.json")) {
            std::fprintf(stderr, "%serror: %s failed (exit status %d); its log: %s\n", who.c_str(), what.c_str(), code,
                         (dir / "job.log").string().c_str());
            ok = false;
          }
          if (ranks.writes_tables() && !skipped) {
            ok = write_tables(ob, arms, command) && ok;
            if (o.budgets.size() > 1) write_convergence(o, arms);
          }
        }
      }
      if (i == 0 && classifier_first) skipped = ranks.any(skipped);  // the others wait for run 0 here
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%serror: %s\n", who.c_str(), e.what());
    failed = true;
  }
  // Collective: every rank has finished its runs.
  skipped = ranks.any(skipped);
  failed = ranks.any(failed);
  ok = !ranks.any(!ok);
  if (skipped) return 77;
  if (failed) return 1;
  if (ranks.writes_tables()) {
    try {
      const std::vector<Arm> arms = asked_arms(o);
      for (double budget : o.budgets) ok = write_tables(for_budget(o, budget), arms, command) && ok;
      if (o.budgets.size() > 1) write_convergence(o, arms);
      std::printf("wrote %s and %s\n", (o.out / "results.md").string().c_str(),
                  (o.out / "results.csv").string().c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      ok = false;
    }
  }
  // Every rank exits with the study's status.
  return ranks.any(!ok) ? 1 : 0;
}
