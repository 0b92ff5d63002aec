#pragma once
// Loading a trainer's checkpoint for sampling or evaluation: the weights a model should sample
// with are the EMA's where the checkpoint holds one (the trainers keep it), the raw weights
// otherwise.
//
//   auto model = model::multi_decoder_from_description<Multi>(d, path.string());  // or any model
//   const bool ema = train::load_ema_weights(path, model, schedule);
#include <filesystem>

#include "progdiff/io/checkpoint.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/model/description.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"
#include "progdiff/schedule/noise_schedule.hpp"

namespace progdiff::train {

/// The description a Trainer of `model` on `schedule` writes into its checkpoints and expects
/// back (Trainer::description()).
template <class Model, schedule::NoiseSchedule S>
io::ModelDescription checkpoint_description(const Model& model, const S& schedule) {
  io::ModelDescription d = model.describe();
  model::describe_schedule(d, schedule);
  return d;
}

/// Loads the weights of the trainer's checkpoint at `path` into `model`, then replaces them by
/// their EMA when the checkpoint holds one; returns whether it did. ConfigError lists every
/// description key that differs from `model` and `schedule`'s (load_checkpoint); on any error
/// `model` is unchanged.
template <class Model, schedule::NoiseSchedule S>
bool load_ema_weights(const std::filesystem::path& path, Model& model, const S& schedule) {
  using T = typename Model::value_type;
  using B = typename Model::backend_type;
  const io::SafetensorsFile file = io::read_safetensors(path);  // read once: looked into, then loaded
  const bool has_ema = file.contains("ema.updates");
  optim::Ema<T, B> ema;
  io::load_checkpoint(file, model, checkpoint_description(model, schedule), static_cast<optim::AdamW<T, B>*>(nullptr),
                      has_ema ? &ema : nullptr);
  if (has_ema) ema.copy_to(model);
  return has_ema;
}

}  // namespace progdiff::train
