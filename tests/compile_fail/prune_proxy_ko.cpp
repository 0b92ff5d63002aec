// expect: a pruning proxy needs a member function propose(const progdiff::prune::ProxyRequest&)
// A proxy whose member is misnamed (suggest instead of propose) is rejected by proxy_prune.
#include "progdiff/prune/proxy_pruning.hpp"

struct MisnamedProxy {
  std::vector<progdiff::prune::Scheme> suggest(const progdiff::prune::ProxyRequest&) { return {}; }
};

int main() {
  progdiff::prune::SearchSpace space;
  progdiff::prune::MemoryBank bank;
  MisnamedProxy proxy;
  progdiff::prune::proxy_prune(
      space, proxy, [](const progdiff::prune::Scheme&) { return 0.0; }, 1, 1, bank);
}
