#pragma once
// rebuild_with_widths: a fresh model of the same type whose width-table layers take the widths
// of their channel groups (parameters zero; prune_unet fills them). The U-Net types keep their
// structure by type and their widths by value, so a pruned model is just another value.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "progdiff/prune/unet_channel_groups.hpp"

namespace progdiff::prune {

namespace detail {
inline unet::WidthTable pruned_table(const unet::WidthTable& table, const ChannelGroups& groups,
                                     std::span<const std::int64_t> widths, const std::string& layer_prefix) {
  unet::WidthTable t = table;
  for (auto& entry : t.layers) entry.channels = widths[groups.index_of(layer_prefix + entry.layer)];
  return t;
}
}  // namespace detail

template <class... Options>
unet::UNet<Options...> rebuild_with_widths(const unet::UNet<Options...>& net, const ChannelGroups& groups,
                                           std::span<const std::int64_t> widths) {
  return unet::UNet<Options...>(detail::pruned_table(net.widths(), groups, widths, ""), net.config());
}

template <class... Options>
unet::MultiDecoderUNet<Options...> rebuild_with_widths(const unet::MultiDecoderUNet<Options...>& net,
                                                       const ChannelGroups& groups,
                                                       std::span<const std::int64_t> widths) {
  unet::MultiDecoderWidths w = net.widths();
  w.encoder = detail::pruned_table(w.encoder, groups, widths, "");
  for (std::size_t k = 0; k < w.decoders.size(); ++k)
    w.decoders[k] = detail::pruned_table(w.decoders[k], groups, widths, "decoder." + std::to_string(k) + ".");
  return unet::MultiDecoderUNet<Options...>(w, net.config());
}

}  // namespace progdiff::prune
