#pragma once
// AnyPruningProxy: any pruning proxy (prune/proxy.hpp) behind one type, so that code which is
// not a template over the proxy (the TDC pipeline's options, a command-line switch) can hold
// the built-in SearchProxy, an ExternalProxy or a user's own type alike.
//
//   prune::AnyPruningProxy p = prune::ExternalProxy::command("python3 tools/proxy/echo_proxy.py");
//   std::vector<prune::Scheme> s = p.propose(request);
//
// A type without propose(const ProxyRequest&) -> std::vector<Scheme> fails to compile with
// check_pruning_proxy's sentence, not with an error deep in the wrapper.
#include <concepts>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/prune/proxy.hpp"

namespace progdiff::prune {

class AnyPruningProxy {
 public:
  AnyPruningProxy() = default;

  template <class P>
  requires(!std::same_as<std::remove_cvref_t<P>, AnyPruningProxy>)
      AnyPruningProxy(P proxy) {  // NOLINT: implicit, as std::function is from a callable
    check_pruning_proxy<P>();
    if constexpr (PruningProxy<P>) self_ = std::make_unique<Holder<P>>(std::move(proxy));
  }

  explicit operator bool() const { return self_ != nullptr; }

  /// The wrapped proxy's proposals; ConfigError when this holds no proxy.
  std::vector<Scheme> propose(const ProxyRequest& request) {
    require(self_ != nullptr, "AnyPruningProxy: no proxy set");
    return self_->propose(request);
  }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual std::vector<Scheme> propose(const ProxyRequest& request) = 0;
  };
  template <class P>
  struct Holder final : Base {
    explicit Holder(P p) : proxy(std::move(p)) {}
    std::vector<Scheme> propose(const ProxyRequest& request) override { return proxy.propose(request); }
    P proxy;
  };
  std::unique_ptr<Base> self_;
};

static_assert(PruningProxy<AnyPruningProxy>);

}  // namespace progdiff::prune
