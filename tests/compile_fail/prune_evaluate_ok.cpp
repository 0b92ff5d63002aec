// The legal neighbour of prune_evaluate_ko.cpp: evaluate returns the loss.
#include "progdiff/prune/proxy_pruning.hpp"
#include "progdiff/prune/search_proxy.hpp"

int main() {
  progdiff::prune::SearchSpace space;
  progdiff::prune::MemoryBank bank;
  progdiff::prune::SearchProxy proxy;
  progdiff::prune::proxy_prune(
      space, proxy, [](const progdiff::prune::Scheme&) { return 0.0f; }, 1, 1, bank);
}
