// What subscriptions may cost, end to end: stalled catch-up subscribers stay
// within the documented memory bound (96 MiB + 8 MiB per open subscription)
// whatever the event size, and give it back when they end; the server-wide
// memory cap and the per-connection cap refuse new subscriptions with
// RESOURCE_EXHAUSTED; a catch-up that waits for memory still delivers every
// event once, in order; idle connections are closed.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "events.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"

namespace logbook {
namespace {

using testing::Event;

// A Subscribe call that reads until it has `stop_after` events (0: for
// ever), then reads nothing more: a stalled subscriber. Keeps only the
// positions it received.
class Reader final : public grpc::ClientReadReactor<v1::SubscribeResponse> {
 public:
  Reader(v1::EventStore::Stub& stub, const v1::SubscribeRequest& request, size_t stop_after = 0)
      : stop_after_(stop_after) {
    stub.async()->Subscribe(&ctx_, &request, this);
    StartRead(&response_);
    StartCall();
  }
  ~Reader() {
    ctx_.TryCancel();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    bool more;
    {
      absl::MutexLock lock(&mu_);
      if (response_.has_event()) positions_.push_back(response_.event().global_position());
      for (const auto& e : response_.events().events()) positions_.push_back(e.global_position());
      if (response_.has_caught_up()) caught_up_ = true;
      more = stop_after_ == 0 || positions_.size() < stop_after_;
    }
    if (more) StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  void Cancel() { ctx_.TryCancel(); }
  // Waits until `n` events arrived or the call ended; true if they arrived.
  bool WaitEvents(size_t n, absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return positions_.size() >= n || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return positions_.size() >= n;
  }
  bool WaitCaughtUp(absl::Duration timeout = absl::Seconds(120)) {
    absl::MutexLock lock(&mu_);
    auto ok = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return caught_up_ || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&ok), timeout);
    return caught_up_;
  }
  grpc::Status WaitDone(absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
    return done_ ? status_ : grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "still open");
  }
  std::vector<uint64_t> positions() {
    absl::MutexLock lock(&mu_);
    return positions_;
  }

 private:
  const size_t stop_after_;
  grpc::ClientContext ctx_;
  v1::SubscribeResponse response_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool caught_up_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> positions_ ABSL_GUARDED_BY(mu_);
};

v1::SubscribeRequest All() {
  v1::SubscribeRequest r;
  r.mutable_all();
  return r;
}

// 1..n.
std::vector<uint64_t> Positions(uint64_t n) {
  std::vector<uint64_t> out;
  for (uint64_t p = 1; p <= n; ++p) out.push_back(p);
  return out;
}

constexpr long kMiB = 1024;  // In KiB, as RssKib reports.

class SubscriptionLimitsTest : public testing::ServerTest {
 protected:
  using ServerTest::ServerTest;

  // Appends `n` events whose data are `bytes` long ({"pad":"xx..."}), as
  // many per append as 4 MiB allow.
  void AppendEvents(int n, size_t bytes) {
    const std::string data = "{\"pad\":\"" + std::string(bytes - 10, 'x') + "\"}";
    const int per_append = std::max<int>(1, std::min<int>(1000, (4 << 20) / bytes));
    for (int done = 0; done < n; done += per_append) {
      const int k = std::min(per_append, n - done);
      ASSERT_TRUE(TryAppend("big-1", std::vector<v1::EventData>(k, Event("Big", data))).ok());
    }
  }

  // logbookd's RSS once it has stopped growing: no new peak for 3 s.
  long SettledRssKib(long* peak_out = nullptr) {
    long peak = server_->RssKib();
    absl::Time last_rise = absl::Now();
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline && absl::Now() - last_rise < absl::Seconds(3)) {
      absl::SleepFor(absl::Milliseconds(200));
      const long now = server_->RssKib();
      if (now > peak) {
        peak = now;
        last_rise = absl::Now();
      }
    }
    if (peak_out != nullptr) *peak_out = peak;
    return server_->RssKib();
  }

  // Polls RSS until it is at most `limit` or `timeout` passed; returns it.
  long RssFallsTo(long limit, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    long rss = server_->RssKib();
    while (rss > limit && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(200));
      rss = server_->RssKib();
    }
    return rss;
  }

  // 50 subscribers, each on a connection of its own, start at the
  // beginning of a log of `events` events of `bytes`, read their first
  // events and stop. logbookd's RSS must settle under 96 MiB + 8 MiB each,
  // and come back to within 32 MiB of what it was before them once they
  // are cancelled, and within 24 MiB once their connections are closed
  // (about 15 MiB stays: allocator caches, gRPC's own pools).
  void StalledSubscribersStayWithinTheBound(int events, size_t bytes) {
    constexpr int kSubscribers = 50;
    AppendEvents(events, bytes);
    {
      // Full catch-ups first, 8 at once like the pool's connections: what
      // stays allocated for good after them (each connection's receive
      // buffer grows to its largest row) is part of the baseline.
      std::vector<std::unique_ptr<Reader>> warm;
      for (int i = 0; i < 8; ++i) warm.push_back(std::make_unique<Reader>(*stub_, All()));
      for (auto& w : warm) {
        ASSERT_TRUE(w->WaitCaughtUp());
        ASSERT_EQ(w->positions().size(), static_cast<size_t>(events));
      }
    }
    const long before = SettledRssKib();

    std::vector<std::unique_ptr<v1::EventStore::Stub>> stubs;
    std::vector<std::unique_ptr<Reader>> readers;
    for (int i = 0; i < kSubscribers; ++i) {
      stubs.push_back(v1::EventStore::NewStub(server_->NewChannel()));
      readers.push_back(std::make_unique<Reader>(*stubs.back(), All(), /*stop_after=*/2));
    }
    for (int i = 0; i < kSubscribers; ++i) {
      ASSERT_TRUE(readers[i]->WaitEvents(2)) << "subscriber " << i << ": "
                                             << readers[i]->WaitDone(absl::ZeroDuration())
                                                    .error_message();
      EXPECT_EQ(readers[i]->positions(), (std::vector<uint64_t>{1, 2})) << "subscriber " << i;
    }
    long peak = 0;
    const long stalled = SettledRssKib(&peak);
    const long bound = 96 * kMiB + 8 * kMiB * kSubscribers;
    std::printf(
        "[ measure  ] %d stalled subscribers, %d events of %zu bytes: logbookd RSS %ld MiB "
        "before, %ld MiB settled (peak %ld MiB), bound %ld MiB\n",
        kSubscribers, events, bytes, before / kMiB, stalled / kMiB, peak / kMiB, bound / kMiB);
    EXPECT_LT(stalled, bound);

    for (auto& r : readers) r->Cancel();
    for (int i = 0; i < kSubscribers; ++i) {
      EXPECT_EQ(readers[i]->WaitDone().error_code(), grpc::StatusCode::CANCELLED);
    }
    // Their 50 connections stay open: gRPC keeps a few hundred KiB for each.
    const long cancelled = RssFallsTo(before + 32 * kMiB, absl::Seconds(30));
    readers.clear();
    stubs.clear();  // Closes the connections.
    const long closed = RssFallsTo(before + 24 * kMiB, absl::Seconds(30));
    std::printf(
        "[ measure  ] after cancelling them: %ld MiB; their connections closed: %ld MiB (before "
        "them: %ld MiB)\n",
        cancelled / kMiB, closed / kMiB, before / kMiB);
    EXPECT_LE(cancelled, before + 32 * kMiB);
    EXPECT_LE(closed, before + 24 * kMiB);
  }
};

// 70 MiB of 32 KiB events, and 210 MiB of 1 MiB events: both far more than
// what the subscribers may buffer.
TEST_F(SubscriptionLimitsTest, StalledSubscribersOf32KiBEventsStayWithinTheBound) {
  StalledSubscribersStayWithinTheBound(2240, 32 << 10);
}

TEST_F(SubscriptionLimitsTest, StalledSubscribersOf1MiBEventsStayWithinTheBound) {
  StalledSubscribersStayWithinTheBound(210, 1 << 20);
}

class PerConnectionCapTest : public testing::ServerTest {
 protected:
  PerConnectionCapTest() : ServerTest({"--max-subscriptions-per-connection", "3"}) {}
};

TEST_F(PerConnectionCapTest, AConnectionMayHoldAtMostTheCap) {
  std::vector<std::unique_ptr<Reader>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<Reader>(*stub_, All()));
    ASSERT_TRUE(open.back()->WaitCaughtUp());
  }
  Reader fourth(*stub_, All());
  const grpc::Status refused = fourth.WaitDone();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StartsWith(refused.error_message(), "this connection (ipv4:127.0.0.1:"))
      << refused.error_message();
  EXPECT_TRUE(absl::EndsWith(refused.error_message(),
                             ") has 3 open subscriptions, the most that "
                             "--max-subscriptions-per-connection (3) allows; end one, or open "
                             "another connection"))
      << refused.error_message();

  // Another connection has its own count.
  auto other = v1::EventStore::NewStub(server_->NewChannel());
  Reader elsewhere(*other, All());
  EXPECT_TRUE(elsewhere.WaitCaughtUp());

  // Once one ends, the first connection may open another.
  open.pop_back();
  bool admitted = false;
  for (int attempt = 0; attempt < 50 && !admitted; ++attempt) {
    Reader again(*stub_, All());
    admitted = again.WaitCaughtUp(absl::Seconds(5));
    if (!admitted) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(admitted);
}

constexpr char kWaits[] = "waits for subscription memory";

// A cap of 2 MiB: less than two catch-up reads of 1.5 MiB each (256 KiB,
// the event that crosses it, 500 events' overhead).
class MemoryCapTest : public SubscriptionLimitsTest {
 protected:
  MemoryCapTest()
      : SubscriptionLimitsTest({"--max-subscription-memory", "2MiB", "--log-level", "debug"}) {}
};

TEST_F(MemoryCapTest, NewSubscriptionsAreRefusedWhenItIsUsedUpAndCatchUpsWaitForIt) {
  // 8 MB of 400-byte events: a catch-up read takes a window of 500 (about
  // 0.4 MiB), and reads two windows at once when memory allows.
  constexpr int kEvents = 20000;
  AppendEvents(kEvents, 400);

  // A stalled subscriber queues two windows (its second read waited for
  // its first), 0.76 MiB, so a new subscription cannot have 1.5 MiB more
  // (polling: the stalled one's reads may still be arriving).
  Reader stalled(*stub_, All(), /*stop_after=*/1);
  ASSERT_TRUE(stalled.WaitEvents(1));
  grpc::Status refused;
  for (int attempt = 0; attempt < 50; ++attempt) {
    Reader late(*stub_, All(), 1);
    refused = late.WaitDone(absl::Seconds(2));
    if (refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StartsWith(refused.error_message(),
                               "subscription memory is used up: open subscriptions hold "))
      << refused.error_message();
  EXPECT_TRUE(absl::EndsWith(refused.error_message(),
                             " more, over the 2097152 bytes that --max-subscription-memory "
                             "allows; retry later"))
      << refused.error_message();
  EXPECT_TRUE(absl::StrContains(server_->log(), kWaits)) << server_->log();

  // Once it ends, a subscriber catches up, its second read waiting for the
  // first one's memory again and again, and gets every event once, in order.
  stalled.Cancel();
  EXPECT_EQ(stalled.WaitDone().error_code(), grpc::StatusCode::CANCELLED);
  // How often a subscription began to wait, by logbookd's debug log.
  const auto waits = [&] {
    const std::string log = server_->log();
    size_t n = 0;
    for (size_t at = log.find(kWaits); at != std::string::npos; at = log.find(kWaits, at + 1)) ++n;
    return n;
  };
  const size_t before = waits();
  std::unique_ptr<Reader> reader;
  for (int attempt = 0; attempt < 50; ++attempt) {
    reader = std::make_unique<Reader>(*stub_, All());
    if (reader->WaitEvents(1, absl::Seconds(5))) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(reader->WaitCaughtUp()) << reader->WaitDone(absl::ZeroDuration()).error_message();
  EXPECT_EQ(reader->positions(), Positions(kEvents));
  EXPECT_GT(waits(), before) << server_->log();
}

class IdleConnectionTest : public testing::ServerTest {
 protected:
  IdleConnectionTest() : ServerTest({"--idle-connection-timeout", "1"}) {}
};

TEST_F(IdleConnectionTest, AConnectionWithoutCallsIsClosedAfterTheTimeout) {
  auto channel = server_->NewChannel();
  auto stub = v1::EventStore::NewStub(channel);
  grpc::ClientContext ctx;
  v1::GetStreamRequest request;
  request.set_stream_id("none-1");
  v1::StreamInfo info;
  EXPECT_EQ(stub->GetStream(&ctx, request, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // The server sends GOAWAY after a second without calls; the channel
  // drops the connection and goes back to IDLE.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(15);
  grpc_connectivity_state state = channel->GetState(false);
  while (state == GRPC_CHANNEL_READY && channel->WaitForStateChange(state, deadline)) {
    state = channel->GetState(false);
  }
  EXPECT_EQ(state, GRPC_CHANNEL_IDLE);
}

}  // namespace
}  // namespace logbook
