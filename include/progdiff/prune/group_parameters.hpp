#pragma once
// Access to the parameter values of channel groups: which elements of which parameters belong
// to channel j of a group (each element once, though a square layer such as a ResBlock's conv2
// lists the group on both of its axes), and the host copies of a model's parameters by name.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "progdiff/core/error.hpp"
#include "progdiff/core/shape.hpp"
#include "progdiff/nn/parameter.hpp"
#include "progdiff/prune/channel_groups.hpp"

namespace progdiff::prune {

/// A model's parameters by name, as its visit_parameters names them.
template <class Net>
auto parameters_by_name(Net& net) {
  using P = nn::Parameter<typename Net::value_type, typename Net::backend_type>;
  std::map<std::string, P*> m;
  net.visit_parameters([&](const std::string& name, P& p) { m[name] = &p; }, std::string());
  return m;
}

/// Host copies of parameter values (or gradients) by name, in double.
struct HostParameters {
  std::map<std::string, Shape> shapes;
  std::map<std::string, std::vector<double>> values;

  template <class Net>
  static HostParameters of(Net& net, bool gradients = false) {
    HostParameters h;
    for (auto& [name, p] : parameters_by_name(net)) {
      const auto& t = gradients ? p->grad : p->value;
      const auto v = t.to_host();
      h.shapes[name] = t.shape();
      h.values[name] = std::vector<double>(v.begin(), v.end());
    }
    return h;
  }
  const std::vector<double>& at(const std::string& name) const {
    const auto it = values.find(name);
    if (it == values.end()) throw ConfigError("pruning: the model has no parameter '" + name + "'");
    return it->second;
  }
};

/// Calls f(parameter, flat index) for every element of channel `j` of `group`, each once.
/// `shapes` gives every parameter's shape; a slice naming a missing parameter or an index
/// beyond its axis is a ShapeError naming both.
template <class F>
void for_each_channel_element(const ChannelGroup& group, const std::map<std::string, Shape>& shapes, std::int64_t j,
                              F&& f) {
  const auto& slices = group.slices;
  for (std::size_t s = 0; s < slices.size(); ++s) {
    const ChannelSlice& sl = slices[s];
    const auto it = shapes.find(sl.parameter);
    if (it == shapes.end())
      throw ShapeError("pruning: group '" + group.name + "' lists parameter '" + sl.parameter +
                       "', which the model does not have");
    const Shape& shape = it->second;
    if (sl.axis >= shape.rank() || sl.offset + j >= shape[sl.axis])
      throw ShapeError("pruning: group '" + group.name + "' channel " + std::to_string(j) + " is index " +
                       std::to_string(sl.offset + j) + " of axis " + std::to_string(sl.axis) + " of '" + sl.parameter +
                       "' of shape " + shape.str());
    // Earlier slices of the same parameter on other axes already visited their crossing.
    std::vector<const ChannelSlice*> crossing;
    for (std::size_t e = 0; e < s; ++e)
      if (slices[e].parameter == sl.parameter && slices[e].axis != sl.axis) crossing.push_back(&slices[e]);
    std::vector<std::int64_t> stride(static_cast<std::size_t>(shape.rank()), 1);
    for (int a = shape.rank() - 2; a >= 0; --a) stride[a] = stride[a + 1] * shape[a + 1];
    const std::int64_t inner = stride[sl.axis], outer = shape.numel() / (inner * shape[sl.axis]);
    const std::int64_t index = sl.offset + j;
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t i = 0; i < inner; ++i) {
        const std::int64_t flat = (o * shape[sl.axis] + index) * inner + i;
        bool seen = false;
        for (const ChannelSlice* c : crossing)
          seen = seen || (flat / stride[c->axis]) % shape[c->axis] == c->offset + j;
        if (!seen) f(sl, flat);
      }
  }
}

}  // namespace progdiff::prune
