#pragma once
// MemoryBank: M of eqs. 16-17 (Step-Adaptive Training; eqs. 11-12 of TDC Training), the pruning
// schemes evaluated so far with the loss of the pruned model on the group's timesteps,
//   M_{i+1} = M_i u { (theta'_i, Loss(U_{theta - theta'_i}(T, D, S))) }.
//
// It also remembers how far the search got (rounds completed, and the proposals of a round in
// progress), so an interrupted search resumes where it stopped: proxy_prune() evaluates only
// the schemes the bank does not hold yet, and asks the proxy again only for unfinished rounds.
//
// A bank opened with a file (MemoryBank::open) is written back after every change, atomically
// (io/atomic_file.hpp): a crash leaves the previous complete file. The file is JSON:
//   {"format": "progdiff.prune.memory_bank", "version": 1,
//    "layers": [{"name": "down.0", "width": 64, "min_width": 8, "step": 8}, ...],
//    "flops_limit": 1.2e9, "timesteps": [0, 1, ...], "completed_rounds": 3,
//    "pending": {"round": 3, "schemes": [{"down.0": 48, ...}, ...]},
//    "entries": [{"widths": {"down.0": 48, ...}, "loss": 0.031, "flops": 1.1e9, "round": 0,
//                 "source": "search"}, ...]}
// Widths are stored by layer name; a loss that is not finite (a failed evaluation) is null.
// Loading checks the file against the search space: a bank written for other layers (names,
// widths or steps) is a FormatError naming the file and the layer, not silently mixed in.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "progdiff/core/error.hpp"
#include "progdiff/core/json_file.hpp"
#include "progdiff/io/atomic_file.hpp"
#include "progdiff/prune/scheme.hpp"
#include "progdiff/prune/search_space.hpp"

namespace progdiff::prune {

/// One evaluated scheme: (theta'_i, Loss(...)) of eq. 17, with its FLOPs and the round that proposed it.
struct MemoryEntry {
  Scheme scheme;
  double loss = 0.0;   // loss of the pruned model on the group's timesteps; NaN if the evaluation failed
  double flops = 0.0;  // FLOPs of the pruned model
  std::int64_t round = 0;
  std::string source;  // who proposed it ("search", "external", "baseline", ...)
};

class MemoryBank {
 public:
  static constexpr const char* format_name = "progdiff.prune.memory_bank";
  static constexpr int format_version = 1;

  /// An empty bank kept in memory only.
  MemoryBank() = default;

  /// The bank stored at `path` if the file exists (checked against `space`), else an empty one
  /// that will be written there; every later change is saved to `path`.
  static MemoryBank open(const std::filesystem::path& path, const SearchSpace& space) {
    MemoryBank bank = std::filesystem::exists(path) ? load(path, space) : MemoryBank();
    bank.file_ = path;
    bank.save_if_bound(space);
    return bank;
  }

  /// Reads a bank file; IoError if it cannot be read, FormatError naming the file and the line,
  /// column or key if it is malformed or was written for another search space.
  static MemoryBank load(const std::filesystem::path& path, const SearchSpace& space) {
    return from_json(read_json_file(path, "memory bank"), space, "memory bank " + path.string());
  }

  /// Decodes the JSON form; `source` names where it came from in error messages.
  static MemoryBank from_json(const nlohmann::json& j, const SearchSpace& space, const std::string& source) {
    MemoryBank bank;
    const auto fail = [&](const std::string& what) { throw FormatError(source + ": " + what); };
    if (!j.is_object()) fail("expected a JSON object at the top level");
    if (j.value("format", std::string()) != format_name)
      fail(std::string("key 'format' must be \"") + format_name + "\"");
    if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != format_version)
      fail("key 'version' must be " + std::to_string(format_version));
    // The layers the schemes refer to must be the space's layers, in the same order.
    const nlohmann::json& layers = require_key(j, "layers", source);
    if (!layers.is_array() || layers.size() != space.size())
      fail("key 'layers' must list the " + std::to_string(space.size()) + " layers of the search space");
    for (std::size_t i = 0; i < space.size(); ++i) {
      const PrunableLayer& l = space.layers[i];
      const nlohmann::json& f = layers[i];
      const std::string where = "layers[" + std::to_string(i) + "]";
      if (!f.is_object()) fail(where + " must be an object");
      if (f.value("name", std::string()) != l.name)
        fail(where + " is '" + f.value("name", std::string()) + "', the search space has '" + l.name + "' there");
      if (f.value("width", std::int64_t{-1}) != l.width || f.value("step", std::int64_t{-1}) != l.step)
        fail(where + " '" + l.name + "' has width/step " + std::to_string(f.value("width", std::int64_t{-1})) + "/" +
             std::to_string(f.value("step", std::int64_t{-1})) + ", the search space has " + std::to_string(l.width) +
             "/" + std::to_string(l.step));
    }
    bank.completed_rounds_ = integer(j, "completed_rounds", source, 0);
    if (j.contains("pending") && !j["pending"].is_null()) {
      const nlohmann::json& p = j["pending"];
      if (!p.is_object()) fail("key 'pending' must be an object or null");
      bank.pending_round_ = integer(p, "round", source + " pending", 0);
      const nlohmann::json& schemes = require_key(p, "schemes", source + " pending");
      if (!schemes.is_array()) fail("pending.schemes must be an array");
      for (std::size_t k = 0; k < schemes.size(); ++k)
        bank.pending_.push_back(
            read_widths(schemes[k], space, source + ": pending.schemes[" + std::to_string(k) + "]"));
    }
    const nlohmann::json& entries = require_key(j, "entries", source);
    if (!entries.is_array()) fail("key 'entries' must be an array");
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const std::string where = source + ": entries[" + std::to_string(k) + "]";
      const nlohmann::json& e = entries[k];
      if (!e.is_object()) throw FormatError(where + " must be an object");
      MemoryEntry entry;
      entry.scheme = read_widths(require_key(e, "widths", where), space, where + ".widths");
      const nlohmann::json& loss = require_key(e, "loss", where);
      if (loss.is_null())
        entry.loss = std::numeric_limits<double>::quiet_NaN();
      else if (loss.is_number())
        entry.loss = loss.get<double>();
      else
        throw FormatError(where + ".loss must be a number or null");
      const nlohmann::json& flops = require_key(e, "flops", where);
      if (!flops.is_number()) throw FormatError(where + ".flops must be a number");
      entry.flops = flops.get<double>();
      entry.round = integer(e, "round", where, 0);
      entry.source = e.value("source", std::string());
      bank.entries_.push_back(std::move(entry));
    }
    return bank;
  }

  /// The JSON form (see the top of this header).
  nlohmann::json to_json(const SearchSpace& space) const {
    nlohmann::json j;
    j["format"] = format_name;
    j["version"] = format_version;
    j["layers"] = nlohmann::json::array();
    for (const auto& l : space.layers)
      j["layers"].push_back({{"name", l.name}, {"width", l.width}, {"min_width", l.min_width}, {"step", l.step}});
    j["flops_limit"] = space.flops_limit;
    j["timesteps"] = space.timesteps;
    j["completed_rounds"] = completed_rounds_;
    if (pending_.empty()) {
      j["pending"] = nullptr;
    } else {
      nlohmann::json p{{"round", pending_round_}, {"schemes", nlohmann::json::array()}};
      for (const auto& s : pending_) p["schemes"].push_back(widths_json(space, s));
      j["pending"] = std::move(p);
    }
    j["entries"] = nlohmann::json::array();
    for (const auto& e : entries_) {
      nlohmann::json o{{"widths", widths_json(space, e.scheme)}, {"flops", e.flops}, {"round", e.round}};
      o["loss"] = std::isfinite(e.loss) ? nlohmann::json(e.loss) : nlohmann::json(nullptr);
      if (!e.source.empty()) o["source"] = e.source;
      j["entries"].push_back(std::move(o));
    }
    return j;
  }

  /// Writes the bank to `path` atomically.
  void save(const std::filesystem::path& path, const SearchSpace& space) const {
    const std::string text = to_json(space).dump(1) + "\n";
    io::write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
  }

  /// The file this bank is saved to after every change, if any.
  const std::optional<std::filesystem::path>& file() const { return file_; }

  const std::vector<MemoryEntry>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  /// The entry holding exactly this scheme, or null.
  const MemoryEntry* find(const Scheme& scheme) const {
    for (const auto& e : entries_)
      if (e.scheme == scheme) return &e;
    return nullptr;
  }
  bool contains(const Scheme& scheme) const { return find(scheme) != nullptr; }

  /// Eq. 17: adds an evaluated scheme (saved at once if the bank has a file). ConfigError if the
  /// bank already holds the scheme: each scheme is evaluated once.
  void add(MemoryEntry entry, const SearchSpace& space) {
    require(!contains(entry.scheme), "memory bank: scheme already evaluated:\n" + describe_scheme(space, entry.scheme));
    entries_.push_back(std::move(entry));
    save_if_bound(space);
  }

  /// The entry of lowest finite loss among the schemes valid in `space` (within its FLOPs limit),
  /// or null if there is none. Ties go to the earlier entry.
  const MemoryEntry* best(const SearchSpace& space) const {
    const MemoryEntry* b = nullptr;
    for (const auto& e : entries_)
      if (std::isfinite(e.loss) && is_valid_scheme(space, e.scheme) && (b == nullptr || e.loss < b->loss)) b = &e;
    return b;
  }

  /// Entries valid in `space` with a finite loss, best first (stable for equal losses).
  std::vector<const MemoryEntry*> ranked(const SearchSpace& space) const {
    std::vector<const MemoryEntry*> r;
    for (const auto& e : entries_)
      if (std::isfinite(e.loss) && is_valid_scheme(space, e.scheme)) r.push_back(&e);
    std::stable_sort(r.begin(), r.end(), [](const MemoryEntry* a, const MemoryEntry* b) { return a->loss < b->loss; });
    return r;
  }

  /// Rounds of proxy_prune() finished with this bank.
  std::int64_t completed_rounds() const { return completed_rounds_; }
  /// Proposals of the round in progress (empty when no round is in progress).
  const std::vector<Scheme>& pending() const { return pending_; }
  std::int64_t pending_round() const { return pending_round_; }

  /// Records the proposals of `round` before they are evaluated (saved at once if the bank has a file).
  void begin_round(std::int64_t round, std::vector<Scheme> proposals, const SearchSpace& space) {
    require(round == completed_rounds_, "memory bank: round " + std::to_string(round) + " begun after " +
                                            std::to_string(completed_rounds_) + " completed rounds");
    pending_round_ = round;
    pending_ = std::move(proposals);
    save_if_bound(space);
  }
  /// Marks `round` finished and forgets its proposals (saved at once if the bank has a file).
  void complete_round(std::int64_t round, const SearchSpace& space) {
    require(round == completed_rounds_, "memory bank: round " + std::to_string(round) + " completed after " +
                                            std::to_string(completed_rounds_) + " completed rounds");
    completed_rounds_ = round + 1;
    pending_.clear();
    pending_round_ = 0;
    save_if_bound(space);
  }

 private:
  static const nlohmann::json& require_key(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.is_object() || !j.contains(key)) throw FormatError(where + ": missing key '" + key + "'");
    return j[key];
  }
  static std::int64_t integer(const nlohmann::json& j, const char* key, const std::string& where, std::int64_t min) {
    const nlohmann::json& v = require_key(j, key, where);
    if (!v.is_number_integer() || v.get<std::int64_t>() < min)
      throw FormatError(where + ": key '" + key + "' must be an integer >= " + std::to_string(min));
    return v.get<std::int64_t>();
  }
  static nlohmann::json widths_json(const SearchSpace& space, const Scheme& s) {
    nlohmann::json o = nlohmann::json::object();
    for (std::size_t i = 0; i < space.size(); ++i) o[space.layers[i].name] = s.widths.at(i);
    return o;
  }
  // Widths of every layer by name; unknown names, missing layers and disallowed widths are FormatErrors.
  static Scheme read_widths(const nlohmann::json& o, const SearchSpace& space, const std::string& where) {
    if (!o.is_object()) throw FormatError(where + " must be an object of widths by layer name");
    Scheme s = Scheme::full(space);
    std::vector<bool> seen(space.size(), false);
    for (const auto& [name, w] : o.items()) {
      if (!space.contains(name)) throw FormatError(where + ": unknown layer '" + name + "'");
      const std::size_t i = space.index_of(name);
      if (!w.is_number_integer() || !space.layers[i].allows(w.get<std::int64_t>()))
        throw FormatError(where + ": width " + w.dump() + " of layer '" + name + "' is not an allowed width");
      s.widths[i] = w.get<std::int64_t>();
      seen[i] = true;
    }
    for (std::size_t i = 0; i < space.size(); ++i)
      if (!seen[i]) throw FormatError(where + ": no width for layer '" + space.layers[i].name + "'");
    return s;
  }
  void save_if_bound(const SearchSpace& space) const {
    if (file_) save(*file_, space);
  }

  std::vector<MemoryEntry> entries_;
  std::int64_t completed_rounds_ = 0;
  std::int64_t pending_round_ = 0;
  std::vector<Scheme> pending_;
  std::optional<std::filesystem::path> file_;
};

}  // namespace progdiff::prune
