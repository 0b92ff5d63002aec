// The proxy search's evaluations shared among 2 ranks (distributed/proxy_fan_out.hpp): every rank
// ends with the memory bank and best scheme of a single-process search, rank 0's proposals are the
// ones evaluated, each rank evaluates its own share and no scheme twice, and a failure on either
// rank (the proxy on rank 0, an evaluation on rank 1) stops both with a message.
#include <doctest/doctest.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

#include "progdiff/distributed/mpi.hpp"
#include "progdiff/distributed/proxy_fan_out.hpp"
#include "progdiff/prune/proxy_pruning.hpp"
#include "progdiff/prune/search_proxy.hpp"

namespace progdiff_mpi_tests_proxy_fan_out {

namespace {

namespace pr = progdiff::prune;

// loss = sum_i c_i / w_i under FLOPs = sum_i (i + 1) * w_i, as in tests/proxy_test.cpp.
pr::SearchSpace four_layers() {
  pr::SearchSpace s;
  s.layers = {{"a", 64, 8, 8}, {"b", 32, 4, 4}, {"c", 48, 16, 16}, {"d", 96, 8, 8}};
  s.flops = [](std::span<const std::int64_t> w) { return 1.0 * w[0] + 2.0 * w[1] + 3.0 * w[2] + 4.0 * w[3]; };
  s.flops_limit = 450.0;
  s.timesteps = {10, 11, 12};
  return s;
}

double loss(const pr::Scheme& s) {
  const double c[] = {30.0, 80.0, 200.0, 50.0};
  double total = 0.0;
  for (std::size_t i = 0; i < s.widths.size(); ++i) total += c[i] / static_cast<double>(s.widths[i]);
  return total;
}

pr::SearchProxy search_proxy() {
  pr::SearchProxyOptions options;
  options.seed = 5;
  return pr::SearchProxy(options);
}

struct RankProxy {  // proposes other schemes on each rank
  int rank = 0;
  std::vector<pr::Scheme> propose(const pr::ProxyRequest& request) {
    const std::int64_t a = rank == 0 ? 32 : 16;
    return {pr::Scheme{{a, 16, 16, 8 + 8 * request.round}}, pr::Scheme{{8, 8, 16, 16}}};
  }
};

struct FailingProxy {
  int rank = 0;
  std::vector<pr::Scheme> propose(const pr::ProxyRequest&) {
    if (rank == 0) throw std::runtime_error("the proxy command exited with status 3");
    return {};
  }
};

}  // namespace

TEST_CASE("proxy search over 2 ranks: the bank and best scheme of one process, each scheme evaluated once") {
  progdiff::distributed::MpiCommunicator comm;
  REQUIRE(comm.size() == 2);
  const pr::SearchSpace space = four_layers();

  auto serial_proxy = search_proxy();
  pr::MemoryBank serial_bank;  // every rank runs the single-process search as the reference
  const auto serial = pr::proxy_prune(
      space, serial_proxy, [](const pr::Scheme& s) { return loss(s); }, 4, 5, serial_bank, "search");

  auto proxy = search_proxy();
  pr::MemoryBank bank;
  std::vector<pr::Scheme> mine;
  const auto shared = pr::proxy_prune(
      space, proxy,
      [&](const pr::Scheme& s) {
        mine.push_back(s);
        return loss(s);
      },
      4, 5, bank, "search", progdiff::distributed::share_evaluations(comm));

  REQUIRE(bank.entries().size() == serial_bank.entries().size());
  for (std::size_t k = 0; k < bank.entries().size(); ++k) {
    CAPTURE(k);
    CHECK(bank.entries()[k].scheme == serial_bank.entries()[k].scheme);
    CHECK(bank.entries()[k].loss == serial_bank.entries()[k].loss);
    CHECK(bank.entries()[k].round == serial_bank.entries()[k].round);
  }
  CHECK(shared.best == serial.best);
  CHECK(shared.loss == serial.loss);
  CHECK(shared.evaluated == mine.size());
  CHECK(mine.size() > 0);

  // The two ranks' shares: together every evaluation of the serial search, none twice.
  double counts[1] = {static_cast<double>(mine.size())};
  comm.all_reduce_host(counts);
  CHECK(counts[0] == static_cast<double>(serial.evaluated));
  std::vector<double> flat(serial_bank.entries().size() * 4, 0.0);
  for (const pr::Scheme& s : mine)
    for (std::size_t k = 0; k < serial_bank.entries().size(); ++k)
      if (serial_bank.entries()[k].scheme == s) flat[k * 4] += 1.0;
  comm.all_reduce_host(flat);
  for (std::size_t k = 0; k < serial_bank.entries().size(); ++k) CHECK(flat[k * 4] == 1.0);
}

TEST_CASE("proxy search over 2 ranks: rank 0's proposals are evaluated on every rank") {
  progdiff::distributed::MpiCommunicator comm;
  const pr::SearchSpace space = four_layers();
  RankProxy proxy{comm.rank()};
  pr::MemoryBank bank;
  pr::proxy_prune(
      space, proxy, [](const pr::Scheme& s) { return loss(s); }, 2, 2, bank, "scripted",
      progdiff::distributed::share_evaluations(comm));
  // Round 1 proposes {8, 8, 16, 16} again, which the bank already holds.
  REQUIRE(bank.entries().size() == 3);
  CHECK(bank.entries()[0].scheme == pr::Scheme{{32, 16, 16, 8}});
  CHECK(bank.entries()[1].scheme == pr::Scheme{{8, 8, 16, 16}});
  CHECK(bank.entries()[2].scheme == pr::Scheme{{32, 16, 16, 16}});
  CHECK(bank.entries()[0].loss == doctest::Approx(loss(pr::Scheme{{32, 16, 16, 8}})));
}

TEST_CASE("proxy search over 2 ranks: a failure on either rank stops both, naming where") {
  progdiff::distributed::MpiCommunicator comm;
  const pr::SearchSpace space = four_layers();
  SUBCASE("the proxy fails on rank 0") {
    FailingProxy proxy{comm.rank()};
    pr::MemoryBank bank;
    const auto run = [&] {
      pr::proxy_prune(
          space, proxy, [](const pr::Scheme& s) { return loss(s); }, 1, 2, bank, "failing",
          progdiff::distributed::share_evaluations(comm));
    };
    if (comm.rank() == 0)
      CHECK_THROWS_WITH(run(), "the proxy command exited with status 3");
    else
      CHECK_THROWS_WITH(run(), doctest::Contains("the proxy failed on rank 0"));
  }
  SUBCASE("an evaluation fails on rank 1") {
    RankProxy proxy{comm.rank()};
    pr::MemoryBank bank;
    const auto run = [&] {
      pr::proxy_prune(
          space, proxy,
          [&](const pr::Scheme& s) -> double {
            if (comm.rank() == 1) throw std::runtime_error("out of memory evaluating a scheme");
            return loss(s);
          },
          1, 2, bank, "scripted", progdiff::distributed::share_evaluations(comm));
    };
    if (comm.rank() == 1)
      CHECK_THROWS_WITH(run(), "out of memory evaluating a scheme");
    else
      CHECK_THROWS_WITH(run(), doctest::Contains("another process failed to evaluate its schemes"));
  }
}

}  // namespace progdiff_mpi_tests_proxy_fan_out
