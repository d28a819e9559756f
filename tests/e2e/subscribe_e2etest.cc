// Subscriptions end to end: catch-up then live, in order, no gap, no
// duplicate, across instances, with slow consumers isolated.
#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "events.h"
#include "logbookd_process.h"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Logbookd;

// A subscription read through gRPC's callback client API (no thread per
// subscription), recording everything it receives. Reading can be paused.
class Subscriber final : public grpc::ClientReadReactor<v1::SubscribeResponse> {
 public:
  Subscriber(v1::EventStore::Stub& stub, const v1::SubscribeRequest& request, bool paused = false)
      : paused_(paused) {
    stub.async()->Subscribe(&ctx_, &request, this);
    if (!paused_) StartRead(&response_);
    StartCall();
  }
  ~Subscriber() {
    ctx_.TryCancel();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    bool resume;
    {
      absl::MutexLock lock(&mu_);
      switch (response_.content_case()) {
        case v1::SubscribeResponse::kEvent:
          events_.push_back(response_.event());
          ++single_messages_;
          break;
        case v1::SubscribeResponse::kEvents:
          for (const auto& e : response_.events().events()) events_.push_back(e);
          batch_sizes_.push_back(response_.events().events_size());
          break;
        case v1::SubscribeResponse::kCaughtUp:
          caught_up_.push_back(response_.caught_up().global_position());
          order_.push_back("caught_up@" + std::to_string(events_.size()));
          break;
        case v1::SubscribeResponse::kCheckpoint:
          checkpoints_.push_back(response_.checkpoint().global_position());
          break;
        case v1::SubscribeResponse::kFellBehind:
          fell_behind_.push_back(response_.fell_behind().global_position());
          break;
        default:
          break;
      }
      resume = !paused_;
    }
    if (resume) StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  void Resume() {
    {
      absl::MutexLock lock(&mu_);
      paused_ = false;
    }
    StartRead(&response_);
  }

  // Waits until `n` events arrived (or the call ended); true if they did.
  bool WaitEvents(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return events_.size() >= n || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return events_.size() >= n;
  }
  template <typename Pred>
  bool WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto ok = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return pred(*this) || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&ok), timeout);
    return pred(*this);
  }
  // Waits for caught_up; true if it came.
  bool WaitCaughtUp(absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto ok = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !caught_up_.empty() || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&ok), timeout);
    return !caught_up_.empty();
  }
  grpc::Status WaitDone(absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
    return done_ ? status_ : grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "still open");
  }

  // Copies, under the lock.
  std::vector<v1::RecordedEvent> events() { absl::MutexLock l(&mu_); return events_; }
  std::vector<uint64_t> caught_up() { absl::MutexLock l(&mu_); return caught_up_; }
  std::vector<uint64_t> checkpoints() { absl::MutexLock l(&mu_); return checkpoints_; }
  std::vector<uint64_t> fell_behind() { absl::MutexLock l(&mu_); return fell_behind_; }
  std::vector<std::string> order() { absl::MutexLock l(&mu_); return order_; }
  // Events per `events` message, and the number of `event` messages.
  std::vector<int> batch_sizes() { absl::MutexLock l(&mu_); return batch_sizes_; }
  size_t single_messages() { absl::MutexLock l(&mu_); return single_messages_; }

  // Unlocked views for WaitFor predicates (called with mu_ held).
  size_t event_count() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return events_.size(); }
  size_t checkpoint_count() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return checkpoints_.size(); }
  uint64_t last_checkpoint() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return checkpoints_.empty() ? 0 : checkpoints_.back();
  }

 private:
  grpc::ClientContext ctx_;
  v1::SubscribeResponse response_;
  absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RecordedEvent> events_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> caught_up_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> checkpoints_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> fell_behind_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  size_t single_messages_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::SubscribeRequest All() {
  v1::SubscribeRequest r;
  r.mutable_all();
  return r;
}

v1::SubscribeRequest Category(const std::string& category) {
  v1::SubscribeRequest r;
  r.set_category(category);
  return r;
}

// Every event's position, checking they are exactly first, first+1, ...
::testing::AssertionResult Contiguous(const std::vector<v1::RecordedEvent>& events,
                                      uint64_t first) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].global_position() != first + i) {
      return ::testing::AssertionFailure()
             << "event " << i << " has position " << events[i].global_position()
             << ", expected " << first + i;
    }
  }
  return ::testing::AssertionSuccess();
}

class SubscribeTest : public testing::ServerTest {
 protected:
  // Appends `n` events of `type` to `stream` through `stub`, each with data
  // {"pad":"xx..."} of `padding` x's.
  grpc::Status AppendN(v1::EventStore::Stub& stub, const std::string& stream, int n,
                       const std::string& type = "Tick", size_t padding = 0) {
    const std::string data = "{\"pad\":\"" + std::string(padding, 'x') + "\"}";
    return TryAppend(stream, std::vector<v1::EventData>(n, Event(type, data)), nullptr, &stub);
  }
  grpc::Status AppendN(const std::string& stream, int n, const std::string& type = "Tick",
                       size_t padding = 0) {
    return AppendN(*stub_, stream, n, type, padding);
  }
};

// The guarantees below hold whatever max_events_per_message asks for: unset,
// 1 (one event per message) or 100 (batches).
class DeliveryTest : public SubscribeTest, public ::testing::WithParamInterface<int> {
 protected:
  v1::SubscribeRequest With(v1::SubscribeRequest request) {
    if (GetParam() >= 0) request.set_max_events_per_message(GetParam());
    return request;
  }
  // Checks the message shapes `sub` received: singles when unset or 1,
  // batches of at most the maximum otherwise.
  void ExpectShapes(Subscriber& sub) {
    const auto sizes = sub.batch_sizes();
    if (GetParam() <= 1) {
      EXPECT_TRUE(sizes.empty());
      EXPECT_EQ(sub.single_messages(), sub.events().size());
    } else {
      EXPECT_EQ(sub.single_messages(), 0u);
      for (int n : sizes) {
        EXPECT_GE(n, 1);
        EXPECT_LE(n, GetParam());
      }
    }
  }
};

INSTANTIATE_TEST_SUITE_P(EventsPerMessage, DeliveryTest, ::testing::Values(-1, 1, 100),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param < 0 ? std::string("Unset")
                                                 : "Max" + std::to_string(info.param);
                         });

TEST_P(DeliveryTest, CatchesUpThenGoesLiveInOrder) {
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(AppendN("order-" + std::to_string(i % 3), 100).ok());
  Subscriber sub(*stub_, With(All()));
  ASSERT_TRUE(sub.WaitEvents(1200));
  // caught_up comes once, after the whole backlog.
  ASSERT_TRUE(sub.WaitCaughtUp());
  ASSERT_EQ(sub.caught_up(), std::vector<uint64_t>{1200});
  EXPECT_EQ(sub.order(), std::vector<std::string>{"caught_up@1200"});

  ASSERT_TRUE(AppendN("order-7", 3).ok());
  ASSERT_TRUE(AppendN("cart-1", 2).ok());
  ASSERT_TRUE(sub.WaitEvents(1205));
  auto events = sub.events();
  ASSERT_EQ(events.size(), 1205u);
  EXPECT_TRUE(Contiguous(events, 1));
  EXPECT_EQ(events[1200].stream_id(), "order-7");
  EXPECT_EQ(events[1204].stream_id(), "cart-1");
  EXPECT_EQ(sub.caught_up().size(), 1u);
  ExpectShapes(sub);
  if (GetParam() > 1) {
    // The backlog came in full batches: 1,200 events, 100 per message.
    const auto sizes = sub.batch_sizes();
    ASSERT_GE(sizes.size(), 12u);
    EXPECT_EQ(std::vector<int>(sizes.begin(), sizes.begin() + 12), std::vector<int>(12, 100));
  }
}

TEST_F(SubscribeTest, StartPointsAndTargets) {
  ASSERT_TRUE(AppendN("order-1", 3).ok());   // 1..3
  ASSERT_TRUE(AppendN("cart-1", 2).ok());    // 4..5
  ASSERT_TRUE(AppendN("order-2", 2).ok());   // 6..7

  v1::SubscribeRequest after = All();
  after.set_after_position(5);
  Subscriber from_position(*stub_, after);

  v1::SubscribeRequest stream;
  stream.set_stream_id("order-1");
  stream.set_after_version(0);
  Subscriber from_version(*stub_, stream);

  v1::SubscribeRequest now = All();
  now.mutable_from_now();
  Subscriber from_now(*stub_, now);

  Subscriber category(*stub_, Category("order"));

  ASSERT_TRUE(from_now.WaitCaughtUp());
  ASSERT_EQ(from_now.caught_up(), std::vector<uint64_t>{7});
  ASSERT_TRUE(AppendN("order-1", 1).ok());   // 8
  ASSERT_TRUE(AppendN("cart-1", 1).ok());    // 9

  auto positions = [](Subscriber& s, size_t n) {
    EXPECT_TRUE(s.WaitEvents(n));
    std::string out;
    for (const auto& e : s.events()) out += std::to_string(e.global_position()) + " ";
    return out;
  };
  EXPECT_EQ(positions(from_position, 4), "6 7 8 9 ");
  EXPECT_EQ(positions(from_version, 3), "2 3 8 ");
  EXPECT_EQ(positions(from_now, 2), "8 9 ");
  EXPECT_EQ(positions(category, 6), "1 2 3 6 7 8 ");
}

TEST_P(DeliveryTest, FilteredSubscriberStillGetsCheckpoints) {
  v1::SubscribeRequest request = With(Category("order"));
  request.mutable_filter()->add_event_types("Shipped");
  Subscriber sub(*stub_, request);
  ASSERT_TRUE(AppendN("order-1", 5, "Placed").ok());
  ASSERT_TRUE(AppendN("cart-1", 5, "Placed").ok());
  ASSERT_TRUE(sub.WaitFor([](Subscriber& s) { return s.last_checkpoint() >= 10; }))
      << "checkpoints: " << sub.checkpoints().size();
  EXPECT_EQ(sub.events().size(), 0u);
  ASSERT_TRUE(AppendN("order-1", 1, "Shipped").ok());
  ASSERT_TRUE(sub.WaitEvents(1));
  EXPECT_EQ(sub.events()[0].global_position(), 11u);
  ExpectShapes(sub);
}

// Guarantee 1: a transaction that took a lower position but commits later
// never lets a reader skip it. Here a transaction appends through SQL and is
// held open; appends through gRPC take higher positions and write their
// events, but wait to publish rather than commit first; nobody sees anything
// new until it commits; then the subscriber gets every event, in order, once.
TEST_F(SubscribeTest, HeldTransactionCannotBeOvertaken) {
  ASSERT_TRUE(AppendN("seed-1", 2).ok());
  Subscriber sub(*stub_, All());
  ASSERT_TRUE(sub.WaitEvents(2));

  pqxx::connection held_conn(dsn_);
  pqxx::work held(held_conn);
  held.exec("SET LOCAL logbook.tenant = 'default'");
  // A writer's transaction, as logbookd makes it: a ticket with position 3,
  // the event, its receipt, the stream head, then publishing.
  const pqxx::row ticket =
      held.exec1("SELECT ticket, first_position, recorded_at FROM logbook.take_ticket(1, NULL)");
  ASSERT_EQ(ticket[1].as<std::string>(), "3");
  const std::string at = held.quote(ticket[2].as<std::string>());
  held.exec(
      "INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id, "
      "  event_type, data, metadata, content_type, recorded_at, receipt_previous_hash, "
      "  receipt_hash, data_digest, metadata_digest, tenant, written_by) SELECT 3, 'held-1', 0, "
      "  f.id, 'Held', '{}', '', 'application/json', f.at, f.z, logbook.receipt_hash(f.z, "
      "  'held-1', 0, f.id, 'Held', 'application/json', f.at, NULL, NULL, NULL, sha256('{}'), "
      "  sha256(''), 'default', 'held'), sha256('{}'), sha256(''), 'default', 'held' FROM (SELECT 'aaaaaaaa-0000-4000-8000-000000000001'::uuid AS id, "
      "  " + at + "::timestamptz AS at, decode(repeat('00', 32), 'hex') AS z) f;"
      "INSERT INTO logbook.streams (stream_id, version, last_position, head_hash, created_at) "
      "  SELECT 'held-1', 0, 3, receipt_hash, now() FROM logbook.event_log "
      "  WHERE global_position = 3;"
      "SELECT logbook.publish(" + ticket[0].as<std::string>() + ", 3, 3, " + at + ");");
  // Position 3 is now taken by an uncommitted transaction.

  std::vector<std::thread> writers;
  std::atomic<int> acknowledged{0};
  absl::Mutex failures_mu;
  std::vector<std::string> failures;  // Under failures_mu: one line per failed append.
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      auto stub = v1::EventStore::NewStub(server_->NewChannel());
      for (int i = 0; i < 5; ++i) {
        const grpc::Status s = AppendN(*stub, "w-" + std::to_string(t), 1);
        if (s.ok()) {
          ++acknowledged;
        } else {
          absl::MutexLock lock(&failures_mu);
          failures.push_back(absl::StrCat(
              "w-", t, " append ", i, ": ",
              absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())), ": ",
              s.error_message()));
        }
      }
    });
  }
  // Every failed append, with its status, and logbookd's log.
  auto failed = [&] {
    absl::MutexLock lock(&failures_mu);
    return absl::StrCat(failures.size(), " failed appends:\n  ", absl::StrJoin(failures, "\n  "),
                        "\nlogbookd's log:\n", server_->log());
  };
  absl::SleepFor(absl::Milliseconds(500));
  // Nobody overtook the held transaction: no append was acknowledged, no
  // reader sees a position above 2, the subscriber got nothing new.
  EXPECT_EQ(acknowledged.load(), 0) << failed();
  EXPECT_EQ(testing::QueryValue(dsn_, "SELECT max(global_position) FROM logbook.event_log"), "2");
  // ... though they did take positions after 3 and write their events.
  EXPECT_GE(std::stoll(testing::QueryValue(dsn_, "SELECT last_value FROM logbook.positions")), 4);
  EXPECT_EQ(sub.events().size(), 2u);

  held.commit();
  for (auto& w : writers) w.join();
  EXPECT_EQ(acknowledged.load(), 20) << failed();
  ASSERT_TRUE(sub.WaitEvents(23)) << sub.events().size() << " events; " << failed();
  auto events = sub.events();
  ASSERT_EQ(events.size(), 23u);
  EXPECT_TRUE(Contiguous(events, 1));
  EXPECT_EQ(events[2].stream_id(), "held-1");
}

// Guarantee 1 under load: many concurrent writers, one subscriber that must
// see 1..N exactly.
TEST_P(DeliveryTest, ConcurrentWritersNoGapNoDuplicate) {
  Subscriber sub(*stub_, With(All()));
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      auto stub = v1::EventStore::NewStub(server_->NewChannel());
      for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(AppendN(*stub, "c-" + std::to_string(t), 1 + i % 3).ok());
      }
    });
  }
  for (auto& w : writers) w.join();
  const size_t total = 8 * (17 * 1 + 17 * 2 + 16 * 3);
  ASSERT_TRUE(sub.WaitEvents(total));
  absl::SleepFor(absl::Milliseconds(200));  // Anything extra would show up now.
  auto events = sub.events();
  ASSERT_EQ(events.size(), total);
  EXPECT_TRUE(Contiguous(events, 1));
  ExpectShapes(sub);
}

// Positions a writer took and rolled back (here 2,500, more than one read of
// the live tail) stay empty for ever: a live subscriber and a catching-up
// one both step over them to the next event.
TEST_F(SubscribeTest, LiveAndCatchUpStepOverAGap) {
  ASSERT_TRUE(AppendN("seed-1", 2).ok());
  Subscriber live(*stub_, All());
  ASSERT_TRUE(live.WaitEvents(2));
  ASSERT_EQ(testing::Exec(dsn_, "BEGIN; SELECT logbook.take_ticket(2500, NULL); ROLLBACK;"), "");
  ASSERT_TRUE(AppendN("after-1", 1).ok());
  ASSERT_TRUE(live.WaitEvents(3));
  EXPECT_EQ(live.events()[2].global_position(), 2503u);
  Subscriber late(*stub_, All());
  ASSERT_TRUE(late.WaitEvents(3));
  EXPECT_EQ(late.events()[1].global_position(), 2u);
  EXPECT_EQ(late.events()[2].global_position(), 2503u);
}

// Guarantee 2: an append through one instance reaches a live subscriber on
// another instance of the same database.
TEST_F(SubscribeTest, AcrossInstances) {
  Logbookd other(dsn_);
  ASSERT_TRUE(other.WaitServing()) << other.log();
  auto other_stub = v1::EventStore::NewStub(other.channel());
  Subscriber sub(*other_stub, All());
  ASSERT_TRUE(sub.WaitCaughtUp());
  ASSERT_TRUE(AppendN("order-1", 1).ok());  // Through this test's own server.
  ASSERT_TRUE(sub.WaitEvents(1, absl::Seconds(10)));
  EXPECT_EQ(sub.events()[0].stream_id(), "order-1");
}

// Guarantee 3: a subscriber that stops reading does not slow appends or other
// subscribers; the server buffers a bounded amount for it, then reads from the
// table again when it resumes.
TEST_P(DeliveryTest, SlowSubscriberIsIsolatedAndCatchesUpFromTheTable) {
  StartServer({"--subscription-buffer", "200"});
  auto slow_stub = v1::EventStore::NewStub(server_->NewChannel());
  Subscriber slow(*slow_stub, With(All()), /*paused=*/true);
  Subscriber fast(*stub_, With(All()));
  absl::SleepFor(absl::Milliseconds(200));

  constexpr int kBatches = 40, kPerBatch = 50;  // 2,000 events of ~4 KiB: 8 MiB.
  for (int i = 0; i < kBatches; ++i) ASSERT_TRUE(AppendN("bulk-1", kPerBatch, "Tick", 4000).ok());
  // Every append was acknowledged while `slow` read nothing, and `fast` got
  // everything, in order, without waiting for `slow`.
  ASSERT_TRUE(fast.WaitEvents(kBatches * kPerBatch));
  EXPECT_TRUE(Contiguous(fast.events(), 1));
  EXPECT_TRUE(slow.events().empty());

  slow.Resume();
  ASSERT_TRUE(slow.WaitEvents(kBatches * kPerBatch));
  auto events = slow.events();
  ASSERT_EQ(events.size(), static_cast<size_t>(kBatches * kPerBatch));
  EXPECT_TRUE(Contiguous(events, 1));
  EXPECT_FALSE(slow.fell_behind().empty()) << "the slow subscriber never left the live feed";
  ExpectShapes(slow);
  ExpectShapes(fast);
}

// Guarantee 4: many live subscriptions on a bounded number of threads (ten
// connections of 100, the most one connection may open by default).
TEST_F(SubscribeTest, AThousandSubscriptionsOnFewThreads) {
  constexpr int kSubscribers = 1000;
  std::vector<std::unique_ptr<v1::EventStore::Stub>> stubs;
  for (int c = 0; c < 10; ++c) stubs.push_back(v1::EventStore::NewStub(server_->NewChannel()));
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < kSubscribers; ++i) {
    subs.push_back(std::make_unique<Subscriber>(
        *stubs[i / 100], i % 10 == 0 ? All() : Category("cat" + std::to_string(i % 9))));
  }
  absl::SleepFor(absl::Seconds(1));
  for (int c = 0; c < 9; ++c) ASSERT_TRUE(AppendN("cat" + std::to_string(c) + "-1", 1).ok());
  for (int i = 0; i < kSubscribers; ++i) {
    ASSERT_TRUE(subs[i]->WaitEvents(i % 10 == 0 ? 9 : 1)) << "subscriber " << i;
  }
  const long threads = server_->Threads();
  const long rss_kib = server_->RssKib();
  std::printf("[ measure  ] %d live subscriptions: logbookd has %ld threads, RSS %ld KiB\n",
              kSubscribers, threads, rss_kib);
  EXPECT_LT(threads, 64);
}

// Faults: on SIGTERM open subscriptions end with UNAVAILABLE.
TEST_F(SubscribeTest, ShutdownEndsSubscriptionsWithUnavailable) {
  Subscriber sub(*stub_, All());
  ASSERT_TRUE(sub.WaitCaughtUp());
  EXPECT_EQ(server_->Stop(), 0);
  grpc::Status status = sub.WaitDone();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

// Batched delivery with a filter, across catch-up and live: every matching
// event once, in order, in batches of at most the maximum.
TEST_F(SubscribeTest, BatchedDeliveryWithAFilterIsExact) {
  std::vector<uint64_t> expected;  // Positions of order-* events of type Placed.
  uint64_t head = 0;
  auto append = [&](const std::string& stream, int n, const std::string& type) {
    ASSERT_TRUE(AppendN(stream, n, type).ok());
    for (int k = 0; k < n; ++k) {
      ++head;
      if (stream.rfind("order-", 0) == 0 && type == "Placed") expected.push_back(head);
    }
  };
  auto mixed = [&](int i) {
    append((i % 3 == 2 ? "cart-" : "order-") + std::to_string(i % 4), 50,
           i % 2 == 0 ? "Placed" : "Shipped");
  };
  for (int i = 0; i <= 30; ++i) mixed(i);  // 1,550 events, 550 of them match.
  ASSERT_EQ(expected.size(), 550u);

  v1::SubscribeRequest request = Category("order");
  request.mutable_filter()->add_event_types("Placed");
  request.set_max_events_per_message(100);
  Subscriber sub(*stub_, request);
  ASSERT_TRUE(sub.WaitCaughtUp());
  EXPECT_EQ(sub.caught_up(), std::vector<uint64_t>{1550});
  EXPECT_EQ(sub.order(), std::vector<std::string>{"caught_up@550"});
  EXPECT_EQ(sub.batch_sizes(), (std::vector<int>{100, 100, 100, 100, 100, 50}));

  // Live: one append of 250 matching events is split at the maximum...
  append("order-9", 250, "Placed");
  ASSERT_TRUE(sub.WaitEvents(800));
  EXPECT_EQ(sub.batch_sizes(), (std::vector<int>{100, 100, 100, 100, 100, 50, 100, 100, 50}));
  // ...and mixed appends deliver only what matches.
  for (int i = 31; i <= 40; ++i) mixed(i);
  ASSERT_EQ(expected.size(), 950u);
  ASSERT_TRUE(sub.WaitEvents(950));
  absl::SleepFor(absl::Milliseconds(200));  // Anything extra would show up now.
  std::vector<uint64_t> positions;
  for (const auto& e : sub.events()) {
    positions.push_back(e.global_position());
    EXPECT_EQ(e.type(), "Placed");
    EXPECT_EQ(e.stream_id().rfind("order-", 0), 0u) << e.stream_id();
  }
  EXPECT_EQ(positions, expected);
  const auto sizes = sub.batch_sizes();
  int total = 0;
  for (int n : sizes) {
    EXPECT_GE(n, 1);
    EXPECT_LE(n, 100);
    total += n;
  }
  EXPECT_EQ(total, 950);
  EXPECT_EQ(sub.single_messages(), 0u);
  EXPECT_EQ(sub.caught_up().size(), 1u);
}

// A batch also stops at ~1 MiB: of 20 events of 300,000 bytes a message
// holds at most 3, and holds 3 once that many are queued (catch-up reads
// stop at 256 KiB, after one such event; the paused subscriber lets the server
// queue several reads).
TEST_F(SubscribeTest, BatchesAreCappedByBytes) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(AppendN("big-1", 5, "Tick", 300000).ok());
  v1::SubscribeRequest request = All();
  request.set_max_events_per_message(100);
  Subscriber sub(*stub_, request, /*paused=*/true);
  absl::SleepFor(absl::Seconds(1));
  sub.Resume();
  ASSERT_TRUE(sub.WaitCaughtUp());
  int total = 0, full = 0;
  for (int n : sub.batch_sizes()) {
    EXPECT_GE(n, 1);
    EXPECT_LE(n, 3);
    total += n;
    full += n == 3;
  }
  EXPECT_EQ(total, 20);
  EXPECT_GE(full, 1) << "no message packed events of several reads";
  auto events = sub.events();
  ASSERT_EQ(events.size(), 20u);
  EXPECT_TRUE(Contiguous(events, 1));
  EXPECT_EQ(events[19].data().size(), 300010u);
}

TEST_F(SubscribeTest, BadRequestsAreRejected) {
  auto status_of = [&](const v1::SubscribeRequest& r) {
    Subscriber s(*stub_, r);
    return s.WaitDone();
  };
  v1::SubscribeRequest none;
  EXPECT_EQ(status_of(none).error_message(), "target: set one of stream_id, category or all");
  v1::SubscribeRequest bad_stream;
  bad_stream.set_stream_id("bad\xff");
  EXPECT_EQ(status_of(bad_stream).error_message(), "stream_id: not valid UTF-8");
  v1::SubscribeRequest version_on_all = All();
  version_on_all.set_after_version(3);
  EXPECT_EQ(status_of(version_on_all).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::SubscribeRequest missing_version;
  missing_version.set_stream_id("nope-1");
  missing_version.set_after_version(3);
  EXPECT_EQ(status_of(missing_version).error_message(), "stream 'nope-1' does not exist");
  ASSERT_TRUE(AppendN("short-1", 2).ok());
  v1::SubscribeRequest beyond;
  beyond.set_stream_id("short-1");
  beyond.set_after_version(5);
  grpc::Status beyond_status = status_of(beyond);
  EXPECT_EQ(beyond_status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(beyond_status.error_message(), "after_version: stream 'short-1' has no version 5");
}

}  // namespace
}  // namespace logbook
