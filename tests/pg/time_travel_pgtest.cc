// Time travel against a real PostgreSQL: reads of a stream or the log as of
// a version, a position or a time.
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "events.h"
#include "logbook/store/event_store.h"
#include "store_fixture.h"

namespace logbook::store {
namespace {

using testing::Event;

// Reads bounded by version, position or time, over Seed()'s log.
class TimeTravelTest : public testing::StoreTest {};

TEST_F(TimeTravelTest, ReadsAsOfAVersionPositionOrTime) {
  Seed();
  auto all = store_->ReadAll({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 15u);
  // Give the log distinct times: one append later than the rest.
  absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(store_->Append("acct-1", ExpectedVersion::Any(), {Event("Late", "{}")}).ok());
  const absl::Time t = (*all)[14].recorded_at;  // The time of the first 15.

  ReadStreamQuery q{"acct-1"};
  q.until_version = 2;
  auto upto2 = store_->ReadStream(q);
  ASSERT_TRUE(upto2.ok());
  ASSERT_EQ(upto2->size(), 3u);
  EXPECT_EQ(upto2->back().stream_version, 2u);
  q.direction = Direction::kBackward;
  auto back2 = store_->ReadStream(q);
  ASSERT_TRUE(back2.ok());
  ASSERT_EQ(back2->size(), 3u);
  EXPECT_EQ(back2->front().stream_version, 2u);

  ReadStreamQuery at{"acct-1"};
  at.until_time = t;
  auto as_of = store_->ReadStream(at);
  ASSERT_TRUE(as_of.ok());
  EXPECT_EQ(as_of->size(), 5u);  // Not the late one (version 5).
  at.direction = Direction::kBackward;
  at.max_count = 1;
  auto head_then = store_->ReadStream(at);
  ASSERT_TRUE(head_then.ok());
  ASSERT_EQ(head_then->size(), 1u);
  EXPECT_EQ(head_then->front().stream_version, 4u);
  at.until_time = (*all)[0].recorded_at - absl::Seconds(1);
  EXPECT_EQ(store_->ReadStream(at)->size(), 0u);

  ReadAllQuery aq;
  aq.until_time = t;
  auto all_then = store_->ReadAll(aq);
  ASSERT_TRUE(all_then.ok());
  EXPECT_EQ(all_then->size(), 15u);
  aq.direction = Direction::kBackward;
  aq.max_count = 2;
  auto newest_then = store_->ReadAll(aq);
  ASSERT_TRUE(newest_then.ok());
  ASSERT_EQ(newest_then->size(), 2u);
  EXPECT_EQ(newest_then->front().global_position, 15u);
  ReadAllQuery ap;
  ap.until_position = 7;
  EXPECT_EQ(store_->ReadAll(ap)->size(), 7u);
  ap.until_time = (*all)[0].recorded_at - absl::Seconds(1);
  EXPECT_EQ(store_->ReadAll(ap)->size(), 0u);
}

}  // namespace
}  // namespace logbook::store
