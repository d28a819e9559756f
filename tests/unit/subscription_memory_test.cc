// The byte accounting of subscriptions and its decisions: what an event
// and a read take, when a subscriber may read or keep a live batch, and the
// server-wide MemoryBudget with its waiters.
#include "subscription_memory.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace logbook::store {
namespace {

RecordedEvent Sized(size_t data, size_t metadata = 0) {
  RecordedEvent e;
  e.data = std::string(data, 'd');
  e.metadata = std::string(metadata, 'm');
  return e;
}

TEST(SubscriptionMemory, EventsCountTheirStructAndEveryString) {
  RecordedEvent e = Sized(1000, 24);
  EXPECT_EQ(EventBytes(e), sizeof(RecordedEvent) + 1024);
  e.event_id = std::string(36, 'a');
  e.type = "Placed";
  e.content_type = "application/json";
  e.correlation_id = "c1";
  e.causation_id = "c22";
  e.stream_id = "order-1";
  e.redaction_reason = "gdpr";
  EXPECT_EQ(EventBytes(e), sizeof(RecordedEvent) + 1024 + 36 + 6 + 16 + 2 + 3 + 7 + 4);
  EXPECT_EQ(BatchBytes({}), sizeof(std::vector<RecordedEvent>));
  EXPECT_EQ(BatchBytes({Sized(10), Sized(20, 5)}),
            sizeof(std::vector<RecordedEvent>) + 2 * sizeof(RecordedEvent) + 35);
}

TEST(SubscriptionMemory, AReadReservesItsBoundTheCrossingEventAndEachEventsOverhead) {
  EXPECT_EQ(ReadReservation(256 << 10, 500, 1 << 20),
            sizeof(std::vector<RecordedEvent>) + (256 << 10) + (1 << 20) + 500 * kEventOverhead);
  // The most such a read can return fits: max_bytes - 1 of events before the
  // last, one event of max_event_bytes, each within its overhead.
  std::vector<RecordedEvent> worst = {Sized((256 << 10) - 1), Sized(1 << 20)};
  EXPECT_LE(BatchBytes(worst), ReadReservation(256 << 10, 2, 1 << 20));
}

TEST(SubscriptionMemory, AReadStartsWhenItFitsOrNothingIsHeld) {
  EXPECT_TRUE(MayStartRead(0, 100, 100));
  EXPECT_TRUE(MayStartRead(0, 500, 100));  // Too big for the budget, but nothing is held.
  EXPECT_TRUE(MayStartRead(40, 60, 100));
  EXPECT_FALSE(MayStartRead(41, 60, 100));
  EXPECT_FALSE(MayStartRead(1, 500, 100));
}

TEST(SubscriptionMemory, ALiveBatchIsTakenWhenIdleOrWithinEveryBound) {
  LiveRoom room;
  room.events = 3;
  room.batch_bytes = 1000;
  room.queued_events = 5;
  room.held = 2000;
  room.max_events = 10;
  room.budget = 3000;
  EXPECT_TRUE(TakesLiveBatch(room));  // 8 events, 3,000 bytes: exactly at both bounds.
  LiveRoom over = room;
  over.held = 2001;  // The whole batch counts, however few of its events it keeps.
  EXPECT_FALSE(TakesLiveBatch(over));
  over = room;
  over.queued_events = 8;
  EXPECT_FALSE(TakesLiveBatch(over));
  over = room;
  over.over_cap = true;
  EXPECT_FALSE(TakesLiveBatch(over));
  // Idle (nothing queued, no message out): sends it at once, whatever it costs.
  over.idle = true;
  over.held = 0;
  over.queued_events = 0;
  over.batch_bytes = 10000;
  EXPECT_TRUE(TakesLiveBatch(over));
  // Nothing of the batch passes its filter: nothing is kept.
  LiveRoom none = room;
  none.events = 0;
  none.over_cap = true;
  none.held = 1 << 30;
  EXPECT_TRUE(TakesLiveBatch(none));
}

// An executor that keeps the tasks for the test to run, or refuses them.
struct FakeExecutor {
  std::vector<std::function<void()>> tasks;
  bool refuse = false;
  Executor executor() {
    return [this](std::function<void()> task) {
      if (refuse) return false;
      tasks.push_back(std::move(task));
      return true;
    };
  }
  int RunAll() {
    std::vector<std::function<void()>> run;
    run.swap(tasks);
    for (auto& t : run) t();
    return static_cast<int>(run.size());
  }
};

// A budget of 1,000 bytes whose wake-ups go to pool_.
class MemoryBudgetTest : public ::testing::Test {
 protected:
  FakeExecutor pool_;
  MemoryBudget budget_{1000, pool_.executor()};
};

TEST_F(MemoryBudgetTest, ReservesUpToTheCapAndWakesWaitersOnTheExecutorWhenMemoryIsGivenBack) {
  EXPECT_TRUE(budget_.TryReserve(600));
  EXPECT_TRUE(budget_.HasRoom(400));
  EXPECT_FALSE(budget_.HasRoom(401));
  int woken = 0;
  EXPECT_FALSE(budget_.TryReserve(401, [&] { ++woken; }));
  EXPECT_EQ(budget_.used(), 600u);
  EXPECT_TRUE(budget_.TryReserve(400));
  EXPECT_EQ(budget_.used(), 1000u);
  EXPECT_FALSE(budget_.OverCap());
  budget_.Reserve(50);  // A batch already read: taken past the cap.
  EXPECT_TRUE(budget_.OverCap());
  budget_.Release(450);
  EXPECT_EQ(budget_.used(), 600u);
  EXPECT_EQ(woken, 0);  // Not on the releasing thread...
  EXPECT_EQ(pool_.RunAll(), 1);
  EXPECT_EQ(woken, 1);  // ...but on the executor, once.
  budget_.Release(100);
  EXPECT_EQ(pool_.RunAll(), 0);
  EXPECT_EQ(budget_.used(), 500u);
}

TEST_F(MemoryBudgetTest, OneReadLargerThanTheCapGoesAheadWhenNothingIsHeld) {
  EXPECT_TRUE(budget_.HasRoom(5000));
  EXPECT_TRUE(budget_.TryReserve(5000));
  EXPECT_FALSE(budget_.TryReserve(1));
  budget_.Release(5000);
  EXPECT_EQ(budget_.used(), 0u);
  MemoryBudget unlimited(0, pool_.executor());
  EXPECT_TRUE(unlimited.TryReserve(size_t{1} << 40));
  EXPECT_TRUE(unlimited.TryReserve(size_t{1} << 40));
  EXPECT_FALSE(unlimited.OverCap());
}

TEST(MemoryBudget, AWakeUpTheExecutorRefusesWaitsForTheNextReleaseOrKick) {
  FakeExecutor pool;
  MemoryBudget budget(100, pool.executor());
  ASSERT_TRUE(budget.TryReserve(100));
  int woken = 0;
  EXPECT_FALSE(budget.TryReserve(10, [&] { ++woken; }));
  pool.refuse = true;
  budget.Release(50);
  EXPECT_EQ(pool.RunAll(), 0);
  pool.refuse = false;
  budget.Kick();
  EXPECT_EQ(pool.RunAll(), 1);
  EXPECT_EQ(woken, 1);
  budget.Kick();
  EXPECT_EQ(pool.RunAll(), 0);  // Woken once only.
}

TEST(MemoryBudget, ABatchHoldsItsBytesUntilItIsFreed) {
  FakeExecutor pool;
  MemoryBudget budget(0, pool.executor());
  std::vector<RecordedEvent> events = {Sized(100), Sized(200, 10)};
  const size_t bytes = BatchBytes(events);
  ASSERT_TRUE(budget.TryReserve(bytes + 1000));  // Its read's reservation.
  size_t held = 0;
  EventBatch batch = HoldBatch(std::move(events), budget, bytes + 1000, &held);
  EXPECT_EQ(held, bytes);
  EXPECT_EQ(budget.used(), bytes);  // The unused reservation went back.
  EventBatch shared = batch;
  batch.reset();
  EXPECT_EQ(budget.used(), bytes);  // Still held by a subscriber.
  shared.reset();
  EXPECT_EQ(budget.used(), 0u);
  // A reservation too small is topped up; without one (the live tail) the
  // batch takes its bytes.
  ASSERT_TRUE(budget.TryReserve(10));
  EventBatch small = HoldBatch({Sized(5)}, budget, 10, &held);
  EXPECT_EQ(budget.used(), held);
  EventBatch live = HoldBatch({Sized(7)}, budget, 0, &held);
  EXPECT_EQ(budget.used(), BatchBytes({Sized(5)}) + held);
  small.reset();
  live.reset();
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace logbook::store
