// Which replica a read goes to (service/src/read_router.h).
#include "read_router.h"

#include <gtest/gtest.h>

namespace logbook::service {
namespace {

TEST(ChooseReplica, TheFirstFromTheStartThatHasReplayedEnough) {
  const std::vector<uint64_t> heads = {10, 25, 7};
  EXPECT_EQ(ChooseReplica(10, heads, 0), 0u);
  EXPECT_EQ(ChooseReplica(10, heads, 1), 1u);
  EXPECT_EQ(ChooseReplica(10, heads, 2), 0u);   // 7 is short: round to the first.
  EXPECT_EQ(ChooseReplica(10, heads, 5), 0u);   // The start wraps (5 % 3 = 2).
  EXPECT_EQ(ChooseReplica(20, heads, 0), 1u);   // Only the second has 20.
  EXPECT_EQ(ChooseReplica(25, heads, 2), 1u);
  EXPECT_EQ(ChooseReplica(26, heads, 0), std::nullopt);  // None: the primary.
  EXPECT_EQ(ChooseReplica(0, {}, 0), std::nullopt);
}

}  // namespace
}  // namespace logbook::service
