#include "run_book.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace logbook::store {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);
const absl::Duration kAck = absl::Seconds(30);

RecordedEvent Event(uint64_t position, uint64_t version) {
  RecordedEvent e;
  e.stream_id = "order-1";
  e.global_position = position;
  e.stream_version = version;
  return e;
}

// A run of order-1 at positions 10, 12, 15 (versions 0..2), its first out.
void AddRun(RunBook& book, int64_t key = 10) {
  book.Add(key, {Event(10, 0), 1}, kT0 + kAck, kT0 + kAck + absl::Seconds(10),
           {Event(12, 1), Event(15, 2)});
}

std::vector<uint64_t> Positions(const std::vector<GroupDelivery>& ds) {
  std::vector<uint64_t> out;
  for (const GroupDelivery& d : ds) out.push_back(d.event.global_position);
  return out;
}

TEST(RunBookTest, EachAckReadiesTheNextEventAndTheLastEndsTheRun) {
  RunBook book;
  AddRun(book);
  EXPECT_TRUE(book.Holds(10));
  EXPECT_FALSE(book.Holds(12));                    // Not sent yet.
  EXPECT_TRUE(book.TakeReady(kT0, kAck).empty());  // 10 is out.

  RunBook::Acked acked = book.Ack({10, 99});  // 99: not here, ignored.
  EXPECT_EQ(acked.acked, 1u);
  EXPECT_TRUE(acked.ended.empty());
  EXPECT_EQ(book.NextDue(kAck), absl::InfinitePast());  // 12 is ready.
  std::vector<GroupDelivery> ready = book.TakeReady(kT0 + absl::Seconds(1), kAck);
  EXPECT_EQ(Positions(ready), std::vector<uint64_t>{12});
  EXPECT_EQ(ready[0].attempt, 1u);
  // Its row's renewal (held until kT0 + 40 s, renewed 5 s before an
  // event's deadline could pass it) comes before 12's deadline.
  EXPECT_EQ(book.NextDue(kAck), kT0 + absl::Seconds(5));

  EXPECT_EQ(book.Ack({12}).acked, 1u);
  EXPECT_EQ(Positions(book.TakeReady(kT0 + absl::Seconds(2), kAck)), std::vector<uint64_t>{15});
  acked = book.Ack({15});
  ASSERT_EQ(acked.ended.size(), 1u);
  EXPECT_EQ(acked.ended[0].key, 10);
  EXPECT_EQ(acked.ended[0].rest_from, 0u);  // Done: the row goes.
  EXPECT_EQ(book.runs(), 0u);
  EXPECT_EQ(book.NextDue(kAck), std::nullopt);
}

TEST(RunBookTest, ARunTruncatedWhenTheMembersChangeEndsAfterItsEventOut) {
  RunBook book;
  AddRun(book);
  book.Truncate();
  const RunBook::Acked acked = book.Ack({10});
  ASSERT_EQ(acked.ended.size(), 1u);
  EXPECT_EQ(acked.ended[0].key, 10);
  EXPECT_EQ(acked.ended[0].rest_from, 12u);  // The rest goes back, from 12: two events.
  EXPECT_EQ(acked.ended[0].rest_events, 2u);
  EXPECT_EQ(book.runs(), 0u);
}

TEST(RunBookTest, ASplitLeavesTheEventOutAsItsOwnRowAndTheRestFree) {
  RunBook book;
  AddRun(book);
  book.Ack({10});
  book.TakeReady(kT0, kAck);                                    // 12 out, due kT0 + kAck.
  std::vector<RunBook::Split> splits = book.SplitAt({12, 15});  // 15 is not out: ignored.
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].key, 10);
  EXPECT_EQ(splits[0].position, 12u);
  EXPECT_EQ(splits[0].attempts, 1u);
  EXPECT_EQ(splits[0].deadline, kT0 + kAck);
  EXPECT_EQ(splits[0].rest_from, 15u);
  EXPECT_EQ(splits[0].rest_events, 1u);
  EXPECT_FALSE(book.Holds(12));

  // The last event out: nothing after it.
  AddRun(book, 20);
  book.Ack({10});
  book.TakeReady(kT0, kAck);
  book.Ack({12});
  book.TakeReady(kT0, kAck);
  splits = book.SplitAt({15});
  ASSERT_EQ(splits.size(), 1u);
  EXPECT_EQ(splits[0].rest_from, 0u);
}

TEST(RunBookTest, EventsOutPastTheirDeadlineSplitAndReadyOnesLeaveUndelivered) {
  RunBook book;
  AddRun(book, 10);
  EXPECT_TRUE(book.Expire(kT0 + kAck - absl::Seconds(1)).empty());
  std::vector<RunBook::Split> expired = book.Expire(kT0 + kAck);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].position, 10u);
  EXPECT_EQ(expired[0].rest_from, 12u);
  EXPECT_EQ(expired[0].rest_events, 2u);

  // TakeAll: a ready event, never sent, leaves with 0 attempts.
  AddRun(book, 10);
  book.Ack({10});
  std::vector<RunBook::Split> all = book.TakeAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].position, 12u);
  EXPECT_EQ(all[0].attempts, 0u);
  EXPECT_EQ(all[0].deadline, absl::InfinitePast());
  EXPECT_EQ(all[0].rest_from, 15u);
  EXPECT_EQ(all[0].rest_events, 1u);
}

TEST(RunBookTest, AnEventIsSentOnlyWhileItsRowOutlivesItsDeadline) {
  RunBook book;
  AddRun(book);  // Row held until kT0 + 40 s.
  book.Ack({10});
  // At kT0 + 10 s, 12's deadline would be kT0 + 40 s: past the row.
  EXPECT_TRUE(book.TakeReady(kT0 + absl::Seconds(10), kAck).empty());
  const std::vector<int64_t> renew = book.ToRenew(kT0 + absl::Seconds(10), kAck);
  EXPECT_EQ(renew, std::vector<int64_t>{10});
  book.Renewed(renew, {10}, kT0 + absl::Seconds(50));
  EXPECT_EQ(Positions(book.TakeReady(kT0 + absl::Seconds(10), kAck)), std::vector<uint64_t>{12});
  // A row the database no longer gives the session leaves the book.
  book.Renewed({10}, {}, kT0);
  EXPECT_EQ(book.runs(), 0u);
  EXPECT_FALSE(book.Holds(12));
}

}  // namespace
}  // namespace logbook::store
