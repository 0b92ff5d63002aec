// expect: proxy_prune: evaluate(scheme) must return the loss as a number
// An evaluate callback that returns nothing cannot feed the memory bank (eq. 17).
#include "progdiff/prune/proxy_pruning.hpp"
#include "progdiff/prune/search_proxy.hpp"

int main() {
  progdiff::prune::SearchSpace space;
  progdiff::prune::MemoryBank bank;
  progdiff::prune::SearchProxy proxy;
  progdiff::prune::proxy_prune(
      space, proxy, [](const progdiff::prune::Scheme&) {}, 1, 1, bank);
}
