#include "lease_book.h"

#include <gtest/gtest.h>

#include <vector>

namespace logbook::store {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(LeaseBookTest, ALeaseClosesWithItsLastSettledEventAndCountsTheAcks) {
  LeaseBook book;
  book.Add(7, {12, 10, 11}, kT0);
  book.Add(8, {20}, kT0 + absl::Seconds(1));
  EXPECT_EQ(book.in_flight(), 4u);
  EXPECT_EQ(book.LeaseOf(11), 7);
  EXPECT_EQ(book.LeaseOf(13), std::nullopt);

  EXPECT_TRUE(book.Settle({10, 99}, /*acked=*/true).empty());  // 99: not here, ignored.
  EXPECT_TRUE(book.Settle({10}, /*acked=*/true).empty());      // Settled already.
  EXPECT_EQ(book.in_flight(), 3u);
  // A nacked event settles the lease too, uncounted as acked.
  std::vector<LeaseBook::Closed> closed = book.Settle({12, 20, 11}, /*acked=*/false);
  ASSERT_EQ(closed.size(), 2u);
  EXPECT_EQ(closed[0].lease_id, 8);
  EXPECT_EQ(closed[0].acked, 0u);
  EXPECT_TRUE(closed[0].open.empty());
  EXPECT_EQ(closed[1].lease_id, 7);
  EXPECT_EQ(closed[1].acked, 1u);
  EXPECT_TRUE(closed[1].open.empty());
  EXPECT_TRUE(book.empty());
  EXPECT_EQ(book.in_flight(), 0u);
}

TEST(LeaseBookTest, ExpiredLeasesLeaveWithWhatIsStillOpen) {
  LeaseBook book;
  book.Add(1, {5, 6, 7}, kT0);
  book.Add(2, {8, 9}, kT0 + absl::Seconds(30));
  EXPECT_EQ(book.NextDeadline(), kT0);
  book.Settle({6}, /*acked=*/true);

  EXPECT_TRUE(book.Expire(kT0 - absl::Milliseconds(1)).empty());
  std::vector<LeaseBook::Closed> expired = book.Expire(kT0);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].lease_id, 1);
  EXPECT_EQ(expired[0].acked, 1u);
  EXPECT_EQ(expired[0].open, (std::vector<uint64_t>{5, 7}));
  EXPECT_EQ(book.LeaseOf(5), std::nullopt);  // A late ack of it is not this book's.
  EXPECT_EQ(book.NextDeadline(), kT0 + absl::Seconds(30));
  EXPECT_EQ(book.in_flight(), 2u);
}

TEST(LeaseBookTest, TakeAllEmptiesTheBook) {
  LeaseBook book;
  EXPECT_EQ(book.NextDeadline(), std::nullopt);
  book.Add(3, {1, 2}, kT0);
  book.Add(4, {3}, kT0);
  book.Settle({2}, /*acked=*/true);
  std::vector<LeaseBook::Closed> all = book.TakeAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].lease_id, 3);
  EXPECT_EQ(all[0].open, (std::vector<uint64_t>{1}));
  EXPECT_EQ(all[0].acked, 1u);
  EXPECT_EQ(all[1].lease_id, 4);
  EXPECT_EQ(all[1].open, (std::vector<uint64_t>{3}));
  EXPECT_TRUE(book.empty());
  EXPECT_EQ(book.in_flight(), 0u);
}

}  // namespace
}  // namespace logbook::store
