// Subscriptions without gRPC (logbook/store/subscription.h) against a real
// PostgreSQL: catch-up then live in order, and what a failing read does: a
// catch-up read ends the subscription with its status, a tail read is
// retried and loses nothing.
#include "logbook/store/subscription.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "events.h"
#include "fault_injection.h"
#include "logbook/service/worker_pool.h"
#include "store_fixture.h"

namespace logbook::store {
namespace {

using testing::Event;
using testing::FaultInjectingEventStore;

// Takes a subscription's messages, acknowledging each from a thread of its
// own (as gRPC completes a write later), and records what came.
class Collector final : public SubscriptionConsumer {
 public:
  Collector() : acker_([this] { Ack(); }) {}
  // Ends the subscription and waits for its OnEnded: nothing calls this
  // collector afterwards.
  ~Collector() override {
    if (subscription != nullptr) {
      subscription->End(absl::CancelledError("the test is over"));
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(+[](int* ended) { return *ended > 0; }, &ended_));
    }
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    acker_.join();
  }

  void Send(std::vector<SubscriptionItem> message) override {
    absl::MutexLock lock(&mu_);
    if (ended_ > 0) ++sends_after_end_;
    ++unacknowledged_;
    for (const SubscriptionItem& item : message) {
      switch (item.kind) {
        case SubscriptionItem::Kind::kEvent:
          positions_.push_back(item.event().global_position);
          break;
        case SubscriptionItem::Kind::kCaughtUp:
          caught_up_.push_back(item.position);
          break;
        case SubscriptionItem::Kind::kCheckpoint:
        case SubscriptionItem::Kind::kFellBehind:
          break;
      }
    }
  }
  void OnEnded(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    ++ended_;
    status_ = status;
  }

  // Waits up to 30 s for `pred` over this collector; returns it.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(*this); };
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
    return pred(*this);
  }

  std::shared_ptr<Subscription> subscription;
  absl::Mutex mu_;
  std::vector<uint64_t> positions_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> caught_up_ ABSL_GUARDED_BY(mu_);
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
  int sends_after_end_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);

 private:
  void Ack() {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || unacknowledged_ > 0;
        };
        mu_.Await(absl::Condition(&ready));
        if (stopping_) return;
        --unacknowledged_;
      }
      subscription->MessageDone(true);
    }
  }

  int unacknowledged_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread acker_;  // Last: starts once the rest exists.
};

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t p = first; p <= last; ++p) v.push_back(p);
  return v;
}

class SubscriptionTest : public testing::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (HasFatalFailure()) return;
    faulty_ = std::make_unique<FaultInjectingEventStore>(*store_);
    SubscriptionOptions tail_options;
    tail_options.catch_up_page = 100;
    tail_options.tail_retry_delay = absl::Milliseconds(20);
    Executor executor = [this](std::function<void()> task) {
      return workers_.TrySubmit(std::move(task));
    };
    auto tail = LogTail::Start(*faulty_, executor, dsn_, tail_options);
    ASSERT_TRUE(tail.ok()) << tail.status();
    tail_ = *std::move(tail);
  }
  void TearDown() override {
    tail_.reset();  // Ends the subscriptions before their collectors go.
  }

  // Appends `n` events to `stream`, one per append (AppendBatch: in one),
  // and tells the tail, as the service does after an append.
  void Append(const std::string& stream, int n) {
    for (int i = 0; i < n; ++i) {
      auto r = store_->Append(stream, ExpectedVersion::Any(), {Event("Tick")});
      ASSERT_TRUE(r.ok()) << r.status();
      tail_->OnHead(r->last_position);
    }
  }
  void AppendBatch(const std::string& stream, int n) {
    auto r = store_->Append(stream, ExpectedVersion::Any(), std::vector<NewEvent>(n, Event("Tick")));
    ASSERT_TRUE(r.ok()) << r.status();
    tail_->OnHead(r->last_position);
  }

  void Subscribe(Collector& c, SubscriptionRequest request = {}) {
    c.subscription = tail_->Subscribe(request, c);
    c.subscription->Start();
  }

  std::unique_ptr<FaultInjectingEventStore> faulty_;
  service::WorkerPool workers_{4, 1000};
  std::unique_ptr<LogTail> tail_;
};

TEST_F(SubscriptionTest, CatchesUpThenGoesLiveInOrder) {
  AppendBatch("a-1", 250);
  Collector c;
  Subscribe(c);
  ASSERT_TRUE(c.WaitFor([](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !x.caught_up_.empty();
  }));
  Append("a-1", 5);
  ASSERT_TRUE(c.WaitFor(
      [](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x.positions_.size() >= 255; }));
  absl::MutexLock lock(&c.mu_);
  EXPECT_EQ(c.positions_, Range(1, 255));
  EXPECT_EQ(c.caught_up_, (std::vector<uint64_t>{250}));
  EXPECT_EQ(c.ended_, 0);
}

// A catch-up read that fails ends the subscription with that read's
// status, once, after the events read before it; the client resumes from
// the last one it got.
TEST_F(SubscriptionTest, AFailingCatchUpReadEndsTheSubscriptionWithItsStatus) {
  AppendBatch("a-1", 250);
  faulty_->FailReadAll(1, absl::UnavailableError("injected: the database went away"),
                       [](const ReadAllQuery& q) { return q.from_position == 101u; });
  Collector c;
  Subscribe(c);
  ASSERT_TRUE(c.WaitFor([](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x.ended_ > 0; }));
  absl::SleepFor(absl::Milliseconds(200));  // Room for a second end, or a late message.
  absl::MutexLock lock(&c.mu_);
  EXPECT_EQ(c.ended_, 1);
  EXPECT_EQ(c.status_, absl::UnavailableError("injected: the database went away"));
  EXPECT_EQ(c.sends_after_end_, 0);
  EXPECT_TRUE(c.caught_up_.empty());
  // What came is a prefix of the log: nothing skipped, nothing twice.
  ASSERT_LE(c.positions_.size(), 100u);
  EXPECT_EQ(c.positions_, Range(1, c.positions_.size()));
  EXPECT_EQ(faulty_->read_all_failures(), 1);
  EXPECT_EQ(tail_->size(), 0u);
}

// The live tail retries a read that fails; the subscriber waits and then
// gets every event, in order, once.
TEST_F(SubscriptionTest, AFailingTailReadIsRetriedWithoutAGap) {
  AppendBatch("a-1", 3);
  Collector c;
  Subscribe(c);
  ASSERT_TRUE(c.WaitFor([](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !x.caught_up_.empty();
  }));
  faulty_->FailReadAll(3, absl::UnavailableError("injected: tail read failed"));
  Append("a-1", 10);
  ASSERT_TRUE(c.WaitFor(
      [](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x.positions_.size() >= 13; }));
  EXPECT_EQ(faulty_->read_all_failures(), 3);
  absl::MutexLock lock(&c.mu_);
  EXPECT_EQ(c.positions_, Range(1, 13));
  EXPECT_EQ(c.ended_, 0);
}

TEST_F(SubscriptionTest, AStartThatCannotBeResolvedEndsTheSubscription) {
  faulty_->FailHeadPosition(1, absl::UnavailableError("injected: no head"));
  Collector now;
  SubscriptionRequest from_now;
  from_now.start = SubscriptionRequest::Start::kNow;
  Subscribe(now, from_now);
  Collector version;
  SubscriptionRequest after_version;
  after_version.filter.stream_id = "missing-1";
  after_version.start = SubscriptionRequest::Start::kAfterVersion;
  after_version.after = 4;
  Subscribe(version, after_version);
  for (Collector* c : {&now, &version}) {
    ASSERT_TRUE(
        c->WaitFor([](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x.ended_ > 0; }));
  }
  absl::MutexLock a(&now.mu_);
  EXPECT_EQ(now.status_, absl::UnavailableError("injected: no head"));
  absl::MutexLock b(&version.mu_);
  EXPECT_EQ(version.status_.code(), absl::StatusCode::kNotFound) << version.status_;
}

TEST_F(SubscriptionTest, EndAllEndsEverySubscriptionOnceAndRefusesNewOnes) {
  Collector a, b;
  Subscribe(a);
  Subscribe(b);
  for (Collector* c : {&a, &b}) {
    ASSERT_TRUE(c->WaitFor([](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !x.caught_up_.empty();
    }));
  }
  tail_->EndAll(absl::UnavailableError("shutting down"));
  Collector late;
  Subscribe(late);
  for (Collector* c : {&a, &b, &late}) {
    ASSERT_TRUE(
        c->WaitFor([](Collector& x) ABSL_NO_THREAD_SAFETY_ANALYSIS { return x.ended_ > 0; }));
    absl::MutexLock lock(&c->mu_);
    EXPECT_EQ(c->ended_, 1);
    EXPECT_EQ(c->status_, absl::UnavailableError("shutting down"));
  }
  EXPECT_EQ(tail_->size(), 0u);
}

}  // namespace
}  // namespace logbook::store
