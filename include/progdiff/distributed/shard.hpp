#pragma once
// Shard: which rows of a global batch one rank computes. The batch of `count` rows is split
// into contiguous blocks, the first count % ranks ranks taking one row more, so the blocks
// of ranks 0, 1, ... concatenate to the global batch in order.
#include <cstdint>
#include <string>

#include "progdiff/core/error.hpp"

namespace progdiff::distributed {

struct Shard {
  std::int64_t begin = 0, end = 0;  // rows [begin, end) of the global batch
  std::int64_t size() const { return end - begin; }
};

/// Rank `rank`'s rows of a global batch of `count`; every rank gets at least one row.
inline Shard shard_of(std::int64_t count, int rank, int ranks) {
  require(ranks >= 1 && rank >= 0 && rank < ranks,
          "shard_of: rank " + std::to_string(rank) + " is not one of " + std::to_string(ranks) + " ranks");
  require(count >= ranks, "shard_of: a global batch of " + std::to_string(count) + " cannot give each of " +
                              std::to_string(ranks) + " ranks a sample; use a batch of at least the rank count");
  const std::int64_t base = count / ranks, extra = count % ranks;
  const std::int64_t begin = rank * base + (rank < extra ? rank : extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

}  // namespace progdiff::distributed
