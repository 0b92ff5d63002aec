#pragma once
// The exit protocol the applications share: parse the flags, then run. --help prints the flags
// and exits 0; a bad flag exits 2 with CLI11's message or the ConfigError naming it; a failure
// while running exits 1 with its message; whatever the run returns (77: a skip) is the status.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "progdiff/core/error.hpp"

namespace apps {

/// parse(app, argc, argv) gives the options; run(options) the exit status.
template <class Parse, class Run>
int run_app(CLI::App& app, int argc, char** argv, Parse&& parse, Run&& run) {
  decltype(parse(app, argc, argv)) options;
  try {
    options = parse(app, argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "error: %s (see --help)\n", e.what());
    return 2;
  } catch (const progdiff::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace apps
