#pragma once
// ExternalProxy: a pruning proxy (prune/proxy.hpp) answered outside the library, by a callback
// or a shell command, so that a language model can be connected as in the papers (GPT-4 as the
// proxy of eq. 16) or a person can answer by hand.
//
// Each round it builds the structured prompt (prune/proxy_prompt.hpp), passes it on as JSON and
// as readable text, and reads the answer (prune/proxy_answer.hpp). A bad answer is rejected as a
// whole, never applied in part; with `attempts` > 1 the proxy is asked again, the prompt now
// carrying the reason of the rejection, and the last rejection is thrown when no attempt is left.
//
// A command runs under /bin/sh with the prompt JSON on its standard input; the environment
// variables PROGDIFF_PROMPT_JSON and PROGDIFF_PROMPT_TEXT name files holding the JSON and the
// text; its standard output is the answer. A non-zero exit status is an IoError naming the command.
// tools/proxy/echo_proxy.py is a small example.
#include <stdlib.h>
#include <sys/wait.h>

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/proxy.hpp"
#include "progdiff/prune/proxy_answer.hpp"
#include "progdiff/prune/proxy_prompt.hpp"

namespace progdiff::prune {

/// Receives the prompt as JSON text and as readable text; returns the answer text.
using ProxyCallback = std::function<std::string(const std::string& prompt_json, const std::string& prompt_text)>;

struct ExternalProxyOptions {
  PromptOptions prompt;                 // prior scores, bank entries shown, extra instructions
  int attempts = 1;                     // answers asked for per round before a rejection is thrown
  std::string name = "external proxy";  // names the proxy in error messages
};

namespace detail {
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A private temporary directory, removed with everything in it when this goes out of scope.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "progdiff-proxy-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw IoError("external proxy: cannot create a directory like " + pattern);
    path_ = pattern;
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  ~TemporaryDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw IoError("external proxy: cannot write " + path.string());
}

// Runs `command` under /bin/sh as described at the top of this header; returns its standard output.
inline std::string run_proxy_command(const std::string& command, const std::string& prompt_json,
                                     const std::string& prompt_text) {
  TemporaryDirectory dir;
  const std::filesystem::path json_file = dir.path() / "prompt.json", text_file = dir.path() / "prompt.txt";
  write_text(json_file, prompt_json);
  write_text(text_file, prompt_text);
  const std::string script = "PROGDIFF_PROMPT_JSON=" + shell_quote(json_file.string()) +
                             "; PROGDIFF_PROMPT_TEXT=" + shell_quote(text_file.string()) +
                             "; export PROGDIFF_PROMPT_JSON PROGDIFF_PROMPT_TEXT\n(\n" + command + "\n) < " +
                             shell_quote(json_file.string());
  FILE* pipe = ::popen(script.c_str(), "r");
  if (pipe == nullptr) throw IoError("external proxy: cannot run command " + command);
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status == -1) throw IoError("external proxy: cannot wait for command " + command);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw IoError(
        "external proxy: command " + command + " failed (" +
        (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status)) : std::string("killed by a signal")) +
        ")");
  return out;
}
}  // namespace detail

class ExternalProxy {
 public:
  explicit ExternalProxy(ProxyCallback callback, ExternalProxyOptions options = {})
      : callback_(std::move(callback)), options_(std::move(options)) {
    require(static_cast<bool>(callback_), options_.name + ": no callback");
    require(options_.attempts >= 1, options_.name + ": attempts must be at least 1");
  }

  /// A proxy answered by a shell command (see the top of this header).
  static ExternalProxy command(std::string shell_command, ExternalProxyOptions options = {}) {
    require(!shell_command.empty(), options.name + ": empty command");
    if (options.name == ExternalProxyOptions{}.name) options.name = "external proxy '" + shell_command + "'";
    return ExternalProxy(
        [shell_command](const std::string& json, const std::string& text) {
          return detail::run_proxy_command(shell_command, json, text);
        },
        std::move(options));
  }

  /// Asks for request.candidates schemes; every returned scheme is valid in request.space.
  std::vector<Scheme> propose(const ProxyRequest& request) {
    nlohmann::json prompt = proxy_prompt_json(request, options_.prompt);
    std::string text = proxy_prompt_text(request, options_.prompt);
    for (int attempt = 1;; ++attempt) {
      const std::string answer = callback_(prompt.dump(1), text);
      try {
        return parse_proxy_answer(
            request.space, answer,
            options_.name + " (round " + std::to_string(request.round) + ", attempt " + std::to_string(attempt) + ")");
      } catch (const Error& e) {
        rejections_.emplace_back(e.what());
        if (attempt >= options_.attempts) throw;
        prompt["previous_answer_rejected"] = e.what();
        text += "\nYour previous answer was rejected: " + std::string(e.what()) + "\n";
      }
    }
  }

  /// Messages of every answer rejected so far.
  const std::vector<std::string>& rejections() const { return rejections_; }

 private:
  ProxyCallback callback_;
  ExternalProxyOptions options_;
  std::vector<std::string> rejections_;
};

}  // namespace progdiff::prune
