#pragma once
// Training checkpoints: one safetensors file holding everything a run needs to continue exactly.
//
//   tensors                     what
//   model.<name>                parameter values, by the names of the model's visit_parameters
//   optimizer.m.<name>          AdamW first moments      (when an optimizer is saved)
//   optimizer.v.<name>          AdamW second moments
//   optimizer.step              I64 [1], AdamW's step count
//   ema.<name>                  EMA weights               (when an EMA is saved)
//   ema.updates                 I64 [1], updates made
//   train.step                  I64 [1], the caller's step counter
//   rng.<name>                  U64 [3], a Generator's seed, stream and offset
//   counter.<name>              I64 [1], any other integer state (a batch iterator's position, ...)
//   metadata                    the caller's description of the model (structure name, widths, group
//                               boundaries, schedule, ...) plus progdiff.checkpoint (format version)
//                               and progdiff.dtype
//
// The file is written atomically (io/atomic_file.hpp): a run killed while saving leaves the
// previous checkpoint intact and at worst a hidden temporary file beside it. Loading compares the
// stored description with the one the caller expects and refuses a mismatch with a ConfigError
// listing each differing key, expected and found; a missing tensor is a FormatError and a
// mis-shaped one a ShapeError, each naming the tensor. Nothing is changed unless every check passes.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/random.hpp"
#include "progdiff/core/tensor.hpp"
#include "progdiff/io/safetensors.hpp"
#include "progdiff/io/tensor_io.hpp"
#include "progdiff/nn/parameter.hpp"
#include "progdiff/optim/adamw.hpp"
#include "progdiff/optim/ema.hpp"

namespace progdiff::io {

inline constexpr const char* kCheckpointFormat = "1";

/// Free-form key/values describing the model; compared key by key on load.
using ModelDescription = std::map<std::string, std::string>;

/// The run's counters and random generators, saved beside the weights.
struct TrainingState {
  std::int64_t step = 0;
  std::map<std::string, Generator> generators;
  std::map<std::string, std::int64_t> counters;
};

namespace detail {

inline void put_i64(SafetensorsFile& f, const std::string& name, std::int64_t v) {
  f.put<std::int64_t>(name, {1}, std::vector<std::int64_t>{v});
}

inline std::int64_t get_i64(const SafetensorsFile& f, const std::string& name) {
  if (!f.contains(name)) throw FormatError(f.source + ": checkpoint lacks tensor '" + name + "'");
  const auto v = f.values<std::int64_t>(name);
  if (v.size() != 1)
    throw ShapeError(f.source + ": tensor '" + name + "' holds " + std::to_string(v.size()) + " values, expected 1");
  return v[0];
}

template <class T>
const char* dtype_label() {
  return sizeof(T) == 4 ? "F32" : "F64";
}

// Every difference between the stored and the expected description, one per line.
inline std::string description_differences(const std::map<std::string, std::string>& stored,
                                           const ModelDescription& expected) {
  std::string out;
  for (const auto& [key, want] : expected) {
    auto it = stored.find(key);
    if (it == stored.end())
      out += "\n  key '" + key + "': expected '" + want + "', found nothing";
    else if (it->second != want)
      out += "\n  key '" + key + "': expected '" + want + "', found '" + it->second + "'";
  }
  for (const auto& [key, found] : stored)
    if (key.rfind("progdiff.", 0) != 0 && !expected.count(key))
      out += "\n  key '" + key + "': expected nothing, found '" + found + "'";
  return out;
}

// The values of tensor `name`, checked to have `shape`; names the tensor and `role` otherwise.
template <class T>
std::vector<T> staged_values(const SafetensorsFile& f, const std::string& name, const Shape& shape,
                             const std::string& role) {
  if (!f.contains(name)) throw FormatError(f.source + ": checkpoint lacks tensor '" + name + "' (" + role + ")");
  const auto& record = f.at(name);
  const bool same = static_cast<int>(record.shape.size()) == shape.rank() &&
                    std::equal(record.shape.begin(), record.shape.end(), shape.begin());
  if (!same)
    throw ShapeError(f.source + ": tensor '" + name + "' (" + role + ") has shape " + shape_string(record.shape) +
                     ", the model expects " + shape.str());
  return f.values<T>(name);
}

}  // namespace detail

/// Writes `model`'s parameters, the optional optimizer and EMA states, `state` and `description`
/// to `path` atomically. Keys of `description` starting with "progdiff." are reserved.
template <class Model, class T = typename Model::value_type, class B = typename Model::backend_type>
void save_checkpoint(const std::filesystem::path& path, Model& model, const ModelDescription& description,
                     const TrainingState& state, const optim::AdamW<T, B>* optimizer = nullptr,
                     const optim::Ema<T, B>* ema = nullptr) {
  SafetensorsFile f;
  f.source = path.string();
  for (const auto& [key, value] : description) {
    if (key.rfind("progdiff.", 0) == 0)
      throw ConfigError("save_checkpoint: description key '" + key + "' uses the reserved prefix 'progdiff.'");
    f.metadata[key] = value;
  }
  f.metadata["progdiff.checkpoint"] = kCheckpointFormat;
  f.metadata["progdiff.dtype"] = detail::dtype_label<T>();
  model.visit_parameters(
      [&](const std::string& name, nn::Parameter<T, B>& p) { put_tensor(f, "model." + name, p.value); }, std::string());
  if (optimizer) {
    for (const auto& [name, s] : optimizer->moments()) {
      put_tensor(f, "optimizer.m." + name, s.m);
      put_tensor(f, "optimizer.v." + name, s.v);
    }
    detail::put_i64(f, "optimizer.step", optimizer->step_count());
  }
  if (ema) {
    for (const auto& [name, w] : ema->shadow()) put_tensor(f, "ema." + name, w);
    detail::put_i64(f, "ema.updates", ema->update_count());
  }
  detail::put_i64(f, "train.step", state.step);
  for (const auto& [name, g] : state.generators)
    f.put<std::uint64_t>("rng." + name, {3}, std::vector<std::uint64_t>{g.seed(), g.stream(), g.offset()});
  for (const auto& [name, v] : state.counters) detail::put_i64(f, "counter." + name, v);
  write_safetensors(path, f);
}

/// Loads the checkpoint `f`, already read (read_safetensors), into `model` (and the optimizer and
/// EMA when given) after checking its description against `expected`; returns the saved
/// TrainingState. On any error the model, optimizer and EMA are unchanged. For a caller that
/// looks into the file first (train::load_ema_weights), so that the file is read once.
template <class Model, class T = typename Model::value_type, class B = typename Model::backend_type>
TrainingState load_checkpoint(const SafetensorsFile& f, Model& model, const ModelDescription& expected,
                              optim::AdamW<T, B>* optimizer = nullptr, optim::Ema<T, B>* ema = nullptr) {
  const auto version = f.metadata.find("progdiff.checkpoint");
  if (version == f.metadata.end() || version->second != kCheckpointFormat)
    throw FormatError(f.source + ": not a progdiff checkpoint of format " + kCheckpointFormat +
                      " (metadata key 'progdiff.checkpoint' is " +
                      (version == f.metadata.end() ? std::string("absent") : "'" + version->second + "'") + ")");
  if (const std::string diff = detail::description_differences(f.metadata, expected); !diff.empty())
    throw ConfigError(f.source + ": the checkpoint describes a different model:" + diff);

  // Stage every value first, so that a failure leaves the caller's objects untouched.
  struct Staged {
    Tensor<T, B>* into;
    std::vector<T> values;
  };
  std::vector<Staged> staged;
  std::map<std::string, Shape> parameters;
  model.visit_parameters(
      [&](const std::string& name, nn::Parameter<T, B>& p) {
        parameters.emplace(name, p.value.shape());
        staged.push_back({&p.value, detail::staged_values<T>(f, "model." + name, p.value.shape(),
                                                             "parameter '" + name + "' of the model")});
      },
      std::string());
  for (const auto& [name, record] : f.tensors)
    if (name.rfind("model.", 0) == 0 && !parameters.count(name.substr(6)))
      throw FormatError(f.source + ": tensor '" + name + "' matches no parameter of the model");

  std::map<std::string, typename optim::AdamW<T, B>::Moments> moments;
  std::int64_t optimizer_step = 0;
  if (optimizer) {
    optimizer_step = detail::get_i64(f, "optimizer.step");
    for (const auto& [name, shape] : parameters) {
      if (!f.contains("optimizer.m." + name) && optimizer_step == 0) continue;  // never stepped
      auto m = detail::staged_values<T>(f, "optimizer.m." + name, shape, "AdamW first moment");
      auto v = detail::staged_values<T>(f, "optimizer.v." + name, shape, "AdamW second moment");
      moments.emplace(name, typename optim::AdamW<T, B>::Moments{Tensor<T, B>::from_host(shape, m),
                                                                 Tensor<T, B>::from_host(shape, v)});
    }
  }
  std::map<std::string, Tensor<T, B>> shadow;
  std::int64_t ema_updates = 0;
  if (ema) {
    ema_updates = detail::get_i64(f, "ema.updates");
    for (const auto& [name, shape] : parameters)
      shadow.emplace(name,
                     Tensor<T, B>::from_host(shape, detail::staged_values<T>(f, "ema." + name, shape, "EMA weights")));
  }
  TrainingState state;
  state.step = detail::get_i64(f, "train.step");
  for (const auto& [name, record] : f.tensors) {
    if (name.rfind("rng.", 0) == 0) {
      const auto v = f.values<std::uint64_t>(name);
      if (v.size() != 3)
        throw ShapeError(f.source + ": tensor '" + name + "' holds " + std::to_string(v.size()) +
                         " values, expected 3 (seed, stream, offset)");
      state.generators.emplace(name.substr(4), Generator(v[0], v[1], v[2]));
    } else if (name.rfind("counter.", 0) == 0) {
      state.counters.emplace(name.substr(8), detail::get_i64(f, name));
    }
  }

  for (auto& s : staged) B::template copy_from_host<T>(s.into->data(), s.values.data(), s.values.size());
  if (optimizer) {
    optimizer->moments() = std::move(moments);
    optimizer->set_step_count(optimizer_step);
  }
  if (ema) {
    ema->shadow() = std::move(shadow);
    ema->set_update_count(ema_updates);
  }
  return state;
}

/// Reads the checkpoint at `path` into `model` (and the optimizer and EMA when given) after
/// checking its description against `expected`; returns the saved TrainingState. On any error
/// the model, optimizer and EMA are unchanged.
template <class Model, class T = typename Model::value_type, class B = typename Model::backend_type>
TrainingState load_checkpoint(const std::filesystem::path& path, Model& model, const ModelDescription& expected,
                              optim::AdamW<T, B>* optimizer = nullptr, optim::Ema<T, B>* ema = nullptr) {
  return load_checkpoint(read_safetensors(path), model, expected, optimizer, ema);
}

/// Removes temporary files that an interrupted save left beside `checkpoint` (AtomicFile names
/// them ".<file name>.tmp.<pid>.<n>"); returns how many were removed.
inline int remove_stale_temporaries(const std::filesystem::path& checkpoint) {
  const std::filesystem::path directory = checkpoint.has_parent_path() ? checkpoint.parent_path() : ".";
  std::string prefix = ".";  // appended, not "." + name: GCC 12 warns falsely on that form (-Wrestrict)
  prefix += checkpoint.filename().string();
  prefix += ".tmp.";
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(directory, ec))
    if (entry.path().filename().string().rfind(prefix, 0) == 0 && std::filesystem::remove(entry.path(), ec)) ++removed;
  return removed;
}

}  // namespace progdiff::io
