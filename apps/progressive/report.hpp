#pragma once
// report.md of the main job: what ran, with which flags, how long each phase took, and the
// per-group FLOPs, parameters and test losses, the Frechet distance and the files written.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.hpp"
#include "progdiff/core/error.hpp"
#include "progdiff/group/partition.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/metrics/group_loss.hpp"
#include "time_budget.hpp"

namespace job {

struct StageSummary {
  std::string name;
  std::int64_t steps = 0;
  std::int64_t images = 0;           // training images seen (steps x batch x groups per step)
  std::vector<double> final_losses;  // per group: mean training loss over the last tenth of the steps
  std::filesystem::path csv, plot, checkpoint;
};

struct GroupCost {
  std::int64_t begin = 0, end = 0;  // timesteps [begin, end)
  std::int64_t flops = 0;           // per image, forward
  std::int64_t parameters = 0;      // the parameters this group's prediction uses
};

/// Training FLOPs of one part of a run (a stage, a group's pruning or fine-tuning).
struct ComputePart {
  std::string name;
  std::int64_t images = 0;  // training images seen (0 for evaluations only)
  double flops = 0.0;       // forward + backward (3x forward) per training image; forward per evaluation
};

struct Report {
  std::string command;
  Options options;
  progdiff::group::Partition partition;
  std::vector<std::string> notes;
  std::optional<TimeBudgetPlan> time_budget;          // --minutes: the plan the step counts came from
  bool comparison_failed = false;                     // --compare-with found a larger difference than --tolerance
  std::vector<std::pair<std::string, double>> times;  // phase, seconds
  std::vector<StageSummary> stages;
  std::int64_t model_groups = 0;
  std::vector<GroupCost> model_rows;
  std::int64_t parameters = 0;
  double average_flops = 0.0;
  double base_flops = 0.0;           // tdc: the unpruned base's FLOPs per image
  std::int64_t base_parameters = 0;  // tdc: the base's parameters
  std::vector<progdiff::metrics::GroupLoss> test_losses;
  double sample_mean = 0.0;
  double classifier_accuracy = -1.0;
  bool classifier_trained = false;
  double frechet = std::nan(""), frechet_train = std::nan("");
  std::int64_t frechet_samples = 0, frechet_train_samples = 0;
  std::filesystem::path checkpoint;
  double total_seconds = 0.0;
  std::vector<ComputePart> compute;       // every part of the training, pruning evaluations included
  double sampling_flops_per_image = 0.0;  // the denoiser calls of one sample
  // The recipe's words for the report (recipes.hpp), set by the evaluation.
  std::string schedule_name = "DDPM linear betas, 1000 steps";
  std::string sampler_name;
  std::string loss_target = "the predicted noise";
  struct Nll {
    double bits_per_dim = std::nan(""), standard_error = std::nan("");
    std::int64_t images = 0, steps = 0;
  } nll;

  void add_compute(std::string name, std::int64_t images, double flops) {
    compute.push_back({std::move(name), images, flops});
  }
  double training_flops() const {
    double f = 0.0;
    for (const auto& c : compute) f += c.flops;
    return f;
  }
};

namespace detail {
inline std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
inline std::string mflops(double flops) { return fixed(flops / 1e6, 1); }
inline std::string name_of(const std::filesystem::path& p) { return p.filename().string(); }
}  // namespace detail

inline std::string render_report(const Report& r) {
  using detail::fixed;
  const Options& o = r.options;
  std::string s;
  s += "# Progressive diffusion on Fashion-MNIST\n\n";
  s += "Command: `" + r.command + "`\n\n";
  s += "| setting | value |\n|---|---|\n";
  s += "| variant | " + std::string(variant_name(o.variant)) + " |\n";
  s += "| scale | " + std::string(o.paper_scale ? "paper" : (o.tiny ? "tiny" : "default")) + " |\n";
  s += "| U-Net base channels | " + std::to_string(o.channels) + " |\n";
  s += "| stage-1 steps / stage-2 steps | " + std::to_string(o.steps) + " / " + std::to_string(o.stage2_steps) +
       (o.stage1_share > 0 ? " (--stage1-share " + fixed(o.stage1_share, 2) + " of the plan's steps)" : std::string()) +
       " |\n";
  s += "| batch, peak learning rate | " + std::to_string(o.batch) + ", " + fixed(o.lr, 5) + " |\n";
  s += "| objective, U-Net blocks | " + std::string(objective_name(o.objective)) + ", " + arch_name(o.arch) + " |\n";
  s += "| schedule | " + r.schedule_name + " |\n";
  if (o.objective == ObjectiveKind::Edm) {
    s += "| EDM sigma_data | " + fixed(o.sigma_data, 4) + sigma_data_source_note(o.sigma_data_source) + " |\n";
    s += "| EDM training noise levels | ln(sigma) ~ N(" + fixed(o.edm_p_mean, 2) + ", " + fixed(o.edm_p_std, 2) +
         "^2) |\n";
    s += "| EDM noise input | " + std::string(edm_noise_label_name(o.edm_noise_label)) +
         (o.edm_noise_label == pd::model::EdmNoiseLabel::LogSigma ? " (ln(sigma) / 4, the paper's)"
                                                                  : " (sigma's grid timestep, outside the paper)") +
         " |\n";
  }
  s += "| grouping | " + std::string(grouping_name(o.grouping)) + ", N = " + std::to_string(o.groups) + " asked, " +
       std::to_string(r.partition.groups()) + " given; budgets from eq. 8 with k = " + fixed(o.min_flops_ratio, 2) +
       " |\n";
  s += "| validation images (held out of training; what selects) | " + std::to_string(o.validation_images) + " |\n";
  s += "| equal training compute | " + std::string(o.equal_compute ? "yes" : "no") + " |\n";
  if (const auto& t = r.time_budget)
    s += "| time budget (--minutes) | " + fixed(t->minutes, 1) + " min: " + std::to_string(t->steps) + " stage-1 and " +
         std::to_string(t->stage2_steps) + " stage-2 steps (x" + fixed(t->scale, 3) + " of the configuration's) from " +
         fixed(t->flops_per_second / 1e9, 1) + " GFLOP/s of training measured on " + t->cpu +
         "; --steps and --stage2-steps with these counts repeat the run without --minutes |\n";
  s += "| sampler | " + r.sampler_name + " |\n";
  s += "| CPU convolution products | " + std::string(o.bf16 ? "bf16 mixed precision (--bf16)" : "fp32") + " |\n";
  s += "| seed | " + std::to_string(o.seed) + " |\n\n";
  for (const auto& n : r.notes) s += "Note: " + n + ".\n\n";

  s += "## Groups: cost and test loss\n\n";
  s += "Loss: mean squared error of " + r.loss_target + " on " +
       std::to_string(r.test_losses.empty() ? 0 : r.test_losses.front().samples) +
       " test images per group, each at a timestep drawn uniformly in the group (the same noised inputs for "
       "every run). FLOPs: one forward pass per 32x32 image, multiply-adds counted as 2.\n\n";
  s += "| group | timesteps | FLOPs budget (eq. 8) | model part | MFLOPs / image | parameters | test MSE |\n";
  s += "|---|---|---|---|---|---|---|\n";
  for (std::size_t g = 0; g < r.test_losses.size(); ++g) {
    const auto& l = r.test_losses[g];
    // The model may have one group (unified) for all of the job's groups.
    const std::size_t m = r.model_rows.size() == r.test_losses.size() ? g : 0;
    const GroupCost& c = r.model_rows.at(m);
    const double budget = g < r.partition.budgets.size() ? r.partition.budgets[g] : std::nan("");
    s += "| " + std::to_string(g) + " | [" + std::to_string(l.first_timestep) + ", " + std::to_string(l.end_timestep) +
         ") | " + fixed(budget, 3) + " | " +
         (r.model_rows.size() == 1
              ? std::string("the one net")
              : (o.variant == Variant::MultiStage ? "encoder + decoder " : "net ") + std::to_string(m)) +
         " | " + detail::mflops(static_cast<double>(c.flops)) + " | " + std::to_string(c.parameters) + " | " +
         fixed(l.mse, 5) + " |\n";
  }
  double mean_mse = 0.0, weight = 0.0;
  for (const auto& l : r.test_losses) {
    const double share = static_cast<double>(l.end_timestep - l.first_timestep);
    mean_mse += share * l.mse;
    weight += share;
  }
  s += "\nWhole model: " + std::to_string(r.parameters) + " parameters, " + detail::mflops(r.average_flops) +
       " MFLOPs per image averaged over the timesteps, test MSE " +
       fixed(weight > 0 ? mean_mse / weight : std::nan(""), 5) + " averaged over the timesteps.\n\n";
  if (r.base_flops > 0)
    s += "Against the unpruned base (" + detail::mflops(r.base_flops) + " MFLOPs, " +
         std::to_string(r.base_parameters) + " parameters): average FLOPs over the timesteps " +
         fixed(100.0 * r.average_flops / r.base_flops, 1) + "% of the base's.\n\n";

  s += "## Samples\n\n![samples](samples.png)\n\n";
  s += "`samples.png`: the first " + std::to_string(o.grid) + " samples (" + r.sampler_name + ", seed " +
       std::to_string(o.seed) + "); mean pixel value " + fixed(r.sample_mean, 3) + " (the data's is about -0.43).\n\n";
  if (r.frechet_samples > 0) {
    s += "## Frechet distance\n\n";
    s += "In the feature space of a Fashion-MNIST classifier (test accuracy " + fixed(r.classifier_accuracy, 4) +
         (r.classifier_trained ? ", trained in this run" : ", loaded") + "):\n\n";
    s += "| images | distance to the test split |\n|---|---|\n";
    s += "| " + std::to_string(r.frechet_samples) + " generated | " + fixed(r.frechet, 3) + " |\n";
    s += "| " + std::to_string(r.frechet_train_samples) + " training images (the floor at this count) | " +
         fixed(r.frechet_train, 3) + " |\n\n";
  }
  s += "## Training\n\n| stage | steps | images seen | final training loss per group | log | plot | checkpoint |\n";
  s += "|---|---|---|---|---|---|---|\n";
  for (const auto& st : r.stages) {
    std::string losses;
    for (std::size_t k = 0; k < st.final_losses.size(); ++k) losses += (k ? ", " : "") + fixed(st.final_losses[k], 4);
    s += "| " + st.name + " | " + std::to_string(st.steps) + " | " + std::to_string(st.images) + " | " + losses +
         " | `" + detail::name_of(st.csv) + "` | `" + detail::name_of(st.plot) + "` | `" +
         detail::name_of(st.checkpoint) + "` |\n";
  }
  for (const auto& st : r.stages)  // a plot exists only where gnuplot was found
    if (std::filesystem::exists(st.plot)) s += "\n![" + st.name + "](" + detail::name_of(st.plot) + ")\n";
  if (o.variant == Variant::Tdc)
    s += "\nThe groups' pruned and fine-tuned denoisers: `tdc/group<g>/checkpoint.safetensors`, with the "
         "pruning schemes evaluated in `tdc/group<g>/memory_bank.json`.\n\n";
  else
    s += "\nThe model sampled here (EMA weights): `" + detail::name_of(r.checkpoint) +
         "`; `progdiff_sample_checkpoint` samples it again.\n\n";
  s += "## Compute\n\nTraining FLOPs count forward and backward passes (the backward as twice the forward) over "
       "every training image, and forward passes for the pruning's evaluations on the validation images.\n\n";
  s += "| part | images | GFLOPs |\n|---|---|---|\n";
  for (const auto& c : r.compute)
    s += "| " + c.name + " | " + std::to_string(c.images) + " | " + fixed(c.flops / 1e9, 1) + " |\n";
  s += "| **training total** | | **" + fixed(r.training_flops() / 1e9, 1) + "** |\n\n";
  s += "Sampling: " + fixed(r.sampling_flops_per_image / 1e6, 1) + " MFLOPs per image (" + r.sampler_name +
       ", each model call by the net that serves its timestep).\n\n";
  if (r.nll.images > 0)
    s += "Negative log-likelihood bound on " + std::to_string(r.nll.images) + " test images: **" +
         fixed(r.nll.bits_per_dim, 4) + " bits/dim** (standard error " + fixed(r.nll.standard_error, 4) + "; " +
         (r.nll.steps == 0 ? std::string("every step") : std::to_string(r.nll.steps) + " sampled KL steps per image") +
         (o.objective == ObjectiveKind::Simple ? ", the fixed posterior variance" : ", the learned variance") +
         ").\n\n";
  s += "## Wall time\n\n| phase | seconds |\n|---|---|\n";
  for (const auto& [phase, sec] : r.times) s += "| " + phase + " | " + fixed(sec, 1) + " |\n";
  s += "| **total** | **" + fixed(r.total_seconds, 1) + "** |\n\n";
  s += "A resumed run counts only the time it spent itself.\n";
  return s;
}

/// The numbers of the report as JSON (result.json), for programs that compare runs
/// (examples/08_evidence_study); NaN is written as null.
inline nlohmann::json result_json(const Report& r) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  const Options& o = r.options;
  nlohmann::json j;
  j["format"] = "progdiff.job_result";
  j["version"] = 1;
  j["command"] = r.command;
  j["variant"] = variant_name(o.variant);
  j["grouping"] = grouping_name(o.grouping);
  j["pruning"] = o.variant == Variant::Tdc ? o.pruning : std::string();
  j["seed"] = o.seed;
  j["starts"] = r.partition.starts;
  j["budgets"] = r.partition.budgets;
  j["validation_images"] = o.validation_images;
  j["equal_compute"] = o.equal_compute;
  j["steps"] = o.steps;
  j["stage2_steps"] = o.stage2_steps;
  j["stage1_share"] = o.stage1_share > 0 ? nlohmann::json(o.stage1_share) : nlohmann::json();
  j["time_budget"] = r.time_budget ? to_json(*r.time_budget) : nlohmann::json();
  j["frechet"] = number(r.frechet);
  j["frechet_floor"] = number(r.frechet_train);
  j["frechet_samples"] = r.frechet_samples;
  j["ddim_steps"] = o.ddim_steps;
  j["objective"] = objective_name(o.objective);
  j["arch"] = arch_name(o.arch);
  j["sigma_data"] = o.objective == ObjectiveKind::Edm ? nlohmann::json(o.sigma_data) : nlohmann::json();
  j["edm_p_mean"] = o.objective == ObjectiveKind::Edm ? nlohmann::json(o.edm_p_mean) : nlohmann::json();
  j["edm_p_std"] = o.objective == ObjectiveKind::Edm ? nlohmann::json(o.edm_p_std) : nlohmann::json();
  j["edm_noise_label"] =
      o.objective == ObjectiveKind::Edm ? nlohmann::json(edm_noise_label_name(o.edm_noise_label)) : nlohmann::json();
  j["matmul_precision"] = o.bf16 ? "bf16" : "fp32";
  j["sampler"] = r.sampler_name;
  j["nll_bits_per_dim"] = number(r.nll.bits_per_dim);
  j["nll_standard_error"] = number(r.nll.standard_error);
  j["nll_images"] = r.nll.images;
  j["test_loss"] = nlohmann::json::array();
  double mean = 0.0, weight = 0.0;
  for (const auto& l : r.test_losses) {
    j["test_loss"].push_back(number(l.mse));
    const double share = static_cast<double>(l.end_timestep - l.first_timestep);
    mean += share * l.mse;
    weight += share;
  }
  j["test_loss_mean"] = number(weight > 0 ? mean / weight : std::nan(""));
  j["training_flops"] = r.training_flops();
  j["compute"] = nlohmann::json::array();
  for (const auto& c : r.compute) j["compute"].push_back({{"part", c.name}, {"images", c.images}, {"flops", c.flops}});
  j["sampling_flops_per_image"] = r.sampling_flops_per_image;
  j["average_flops"] = r.average_flops;
  j["parameters"] = r.parameters;
  j["seconds"] = r.total_seconds;
  return j;
}

/// Writes result.json atomically: a reader sees a whole file or none.
inline void write_result(const std::filesystem::path& path, const Report& r) {
  const std::string text = result_json(r).dump(2) + "\n";
  progdiff::io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

/// Writes the report; IoError names the path on failure.
inline void write_report(const std::filesystem::path& path, const Report& r) {
  std::ofstream f(path);
  if (!f) throw progdiff::IoError("write_report: cannot open " + path.string() + " for writing");
  f << render_report(r);
  if (!f) throw progdiff::IoError("write_report: writing " + path.string() + " failed");
}

}  // namespace job
