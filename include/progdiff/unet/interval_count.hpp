#pragma once
// The number of intervals of a routed model (the decoders of a MultiDecoderUNet, the experts of
// SeparateExperts): fixed by the type, Decoders<3> or SeparateExperts<Net, 3>, or left to the
// constructor with kRunTimeCount in its place, Decoders<kRunTimeCount> or
// SeparateExperts<Net, kRunTimeCount>. A run-time count is the number of width tables the
// constructor is given, so one type serves whatever number of groups a grouper returns. Both
// forms build the same layers, names and checkpoints for the same widths.

namespace progdiff::unet {

/// In place of a decoder or expert count: the constructor takes it from the widths it is given.
inline constexpr int kRunTimeCount = -1;

/// Whether a type may name `count` intervals: K >= 1, or kRunTimeCount.
constexpr bool valid_interval_count(int count) { return count >= 1 || count == kRunTimeCount; }

}  // namespace progdiff::unet
