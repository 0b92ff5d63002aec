// The legal neighbour of prune_proxy_ko.cpp: the member is called propose.
#include "progdiff/prune/proxy_pruning.hpp"

struct NamedProxy {
  std::vector<progdiff::prune::Scheme> propose(const progdiff::prune::ProxyRequest&) { return {}; }
};

int main() {
  progdiff::prune::SearchSpace space;
  progdiff::prune::MemoryBank bank;
  NamedProxy proxy;
  progdiff::prune::proxy_prune(
      space, proxy, [](const progdiff::prune::Scheme&) { return 0.0; }, 1, 1, bank);
}
