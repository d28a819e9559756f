// End to end: the C++ client library (logbook/client/client.h) against the
// real logbookd: conflicts and their actual version, asynchronous appends,
// Load (snapshot plus the events after it), and subscriptions that resume
// after a restart and unpack batches exactly.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <optional>

#include <gtest/gtest.h>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "events.h"
#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Events;
using testing::Versions;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// A subscription to $all from its start.
v1::SubscribeRequest All() {
  v1::SubscribeRequest r;
  r.mutable_all();
  return r;
}

class ClientTest : public testing::ServerTest {};

// The client library hands the actual version of an ABORTED append back, so
// a writer retries without reading the stream first.
TEST_F(ClientTest, ClientReportsTheActualVersionOfAConflict) {
  Client client = NewClient();
  absl::StatusOr<v1::AppendResponse> missing =
      client.Append("cv-1", expect::Exact(0), {Event("E")});
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ActualVersion(missing.status()), std::nullopt);
  ASSERT_TRUE(client.Append("cv-1", expect::NoStream(), {Event("E"), Event("E")}).ok());
  absl::StatusOr<v1::AppendResponse> stale = client.Append("cv-1", expect::Exact(0), {Event("E")});
  ASSERT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ActualVersion(stale.status()), 1u);
  absl::StatusOr<v1::AppendResponse> retried =
      client.Append("cv-1", expect::Exact(*ActualVersion(stale.status())), {Event("E")});
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->first_version(), 2u);
  EXPECT_EQ(ActualVersion(absl::InvalidArgumentError("x")), std::nullopt);
}

// AppendAsync: one attempt, reported to a callback, with the same results
// (and the same conflict trailer) as Append.
TEST_F(ClientTest, AsyncAppendsReportLikeAppend) {
  Client client = NewClient();
  // Waits for one AppendAsync's result.
  auto append = [&](const std::string& stream, const v1::ExpectedVersion& expected,
                    std::vector<v1::EventData> events) {
    absl::Notification done;
    absl::StatusOr<v1::AppendResponse> result;
    client.AppendAsync(stream, expected, std::move(events),
                       [&](absl::StatusOr<v1::AppendResponse> r) {
                         result = std::move(r);
                         done.Notify();
                       });
    done.WaitForNotification();
    return result;
  };
  absl::StatusOr<v1::AppendResponse> first = append("aa-1", expect::NoStream(),
                                                    {Event("E"), Event("E")});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->first_version(), 0u);
  EXPECT_EQ(first->last_version(), 1u);
  EXPECT_EQ(first->event_ids_size(), 2);
  absl::StatusOr<v1::AppendResponse> stale = append("aa-1", expect::Exact(0), {Event("E")});
  ASSERT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ActualVersion(stale.status()), 1u);
  absl::StatusOr<v1::AppendResponse> bad = append("", expect::Any(), {Event("E")});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  // Many in flight from one thread: each stream's appends chain from the
  // previous one's callback.
  constexpr int kStreams = 16, kAppends = 10;
  absl::BlockingCounter finished(kStreams);
  std::atomic<int> failures{0};
  std::function<void(int, int)> chain = [&](int stream, int i) {
    if (i == kAppends) {
      finished.DecrementCount();
      return;
    }
    const v1::ExpectedVersion expected = i == 0 ? expect::NoStream() : expect::Exact(i - 1);
    client.AppendAsync("ab-" + std::to_string(stream), expected, {Event("E")},
                       [&, stream, i](absl::StatusOr<v1::AppendResponse> r) {
                         if (!r.ok() || r->first_version() != static_cast<uint64_t>(i)) {
                           ++failures;
                         }
                         chain(stream, i + 1);
                       });
  };
  for (int stream = 0; stream < kStreams; ++stream) chain(stream, 0);
  finished.Wait();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(client.GetStream("ab-15")->version(), kAppends - 1u);
}

TEST_F(ClientTest, ClientLoadIsTheNewestSnapshotAndTheEventsAfterIt) {
  for (int i = 0; i < 10; ++i) {  // Versions 0-9, one append each: distinct times.
    Append("agg-1", {Event("E" + std::to_string(i))});
  }
  ASSERT_TRUE(TrySaveSnapshot("agg-1", 3, 1, "s3").ok());
  ASSERT_TRUE(TrySaveSnapshot("agg-1", 5, 2, "s5").ok());
  ASSERT_TRUE(TrySaveSnapshot("agg-1", 6, 1, "s6").ok());
  const std::vector<v1::RecordedEvent> stored = ReadStream("agg-1").first;
  ASSERT_EQ(stored.size(), 10u);
  Client client = NewClient();

  auto load = [&](LoadOptions options) -> std::pair<std::string, std::vector<uint64_t>> {
    absl::StatusOr<Loaded> loaded = client.Load("agg-1", options);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    if (!loaded.ok()) return {};
    return {loaded->snapshot ? loaded->snapshot->state() : "(none)", Versions(loaded->events)};
  };
  using V = std::vector<uint64_t>;
  using Result = std::pair<std::string, V>;
  EXPECT_EQ(load({}), (Result{"s6", V{7, 8, 9}}));
  EXPECT_EQ(load({std::nullopt, 5, std::nullopt}), (Result{"s5", V{}}));
  EXPECT_EQ(load({1, 5, std::nullopt}), (Result{"s3", V{4, 5}}));
  EXPECT_EQ(load({2, std::nullopt, std::nullopt}), (Result{"s5", V{6, 7, 8, 9}}));
  EXPECT_EQ(load({3, std::nullopt, std::nullopt}), (Result{"(none)", V{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}));
  EXPECT_EQ(load({std::nullopt, 2, std::nullopt}), (Result{"(none)", V{0, 1, 2}}));
  EXPECT_EQ(load({std::nullopt, std::nullopt, ToTime(stored[4].recorded_at())}),
            (Result{"s3", V{4}}));
  EXPECT_EQ(load({std::nullopt, std::nullopt, ToTime(stored[8].recorded_at()) -
                                                   absl::Microseconds(1)}),
            (Result{"s6", V{7}}));

  absl::StatusOr<Loaded> missing = client.Load("nope-1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<Loaded> before = client.Load(
      "agg-1", {std::nullopt, std::nullopt, ToTime(stored[0].recorded_at()) - absl::Seconds(1)});
  EXPECT_EQ(before.status().code(), absl::StatusCode::kNotFound);

  // Without a snapshot, in pages.
  Append("agg-2", Events(1000));
  Append("agg-2", Events(1000));
  Append("agg-2", Events(500));
  absl::StatusOr<Loaded> long_one = client.Load("agg-2");
  ASSERT_TRUE(long_one.ok()) << long_one.status();
  EXPECT_FALSE(long_one->snapshot.has_value());
  ASSERT_EQ(long_one->events.size(), 2500u);
  for (size_t i = 0; i < long_one->events.size(); ++i) {
    ASSERT_EQ(long_one->events[i].stream_version(), i);
  }
}

// The client library resumes after the server went away, from the last
// position it delivered: every event once, in order.
TEST_F(ClientTest, ClientResumesAfterAServerRestart) {
  const int port = server_->port();
  logbook::ClientOptions options;
  options.address = server_->address();
  options.initial_backoff = absl::Milliseconds(50);
  logbook::Client client(options);
  absl::Mutex mu;
  std::vector<uint64_t> positions;
  int caught_up = 0;
  auto subscription = client.Subscribe(All(), [&](const v1::SubscribeResponse& r) {
    absl::MutexLock lock(&mu);
    if (r.has_event()) positions.push_back(r.event().global_position());
    if (r.has_caught_up()) ++caught_up;
    return true;
  });
  auto received = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return positions.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
  };
  ASSERT_TRUE(TryAppend("order-1", Events(5, "Tick")).ok());
  ASSERT_TRUE(received(5));

  EXPECT_EQ(server_->Stop(), 0);  // The subscription ends with UNAVAILABLE.
  StartServer({}, port);
  ASSERT_TRUE(TryAppend("order-1", Events(5, "Tick")).ok());
  ASSERT_TRUE(received(10));
  absl::SleepFor(absl::Milliseconds(200));  // A duplicate would show up now.
  subscription->Stop();
  EXPECT_EQ(subscription->Wait().code(), absl::StatusCode::kCancelled);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(positions, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(caught_up, 2);  // Once per call: it did resubscribe.
}

// The client library asks for batches by default and hands the handler one
// event per message; stopping mid-batch stops exactly there, and resuming
// from that position continues with the next event.
TEST_F(ClientTest, ClientUnpacksBatchesExactly) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(TryAppend("order-" + std::to_string(i), Events(100, "Tick")).ok());
  }
  logbook::ClientOptions options;
  options.address = server_->address();
  logbook::Client client(options);

  std::vector<uint64_t> first;
  bool all_single = true;
  auto stopped = client.Subscribe(All(), [&](const v1::SubscribeResponse& r) {
    if (!r.has_event()) return true;
    first.push_back(r.event().global_position());
    return r.event().global_position() < 737;
  });
  ASSERT_TRUE(stopped->Wait().ok());
  ASSERT_EQ(first.size(), 737u);
  for (size_t i = 0; i < first.size(); ++i) ASSERT_EQ(first[i], i + 1);

  absl::Mutex mu;
  std::vector<uint64_t> rest;
  std::vector<uint64_t> caught_up;
  v1::SubscribeRequest after = All();
  after.set_after_position(737);
  auto resumed = client.Subscribe(after, [&](const v1::SubscribeResponse& r) {
    absl::MutexLock lock(&mu);
    if (r.has_events()) all_single = false;
    if (r.has_event()) rest.push_back(r.event().global_position());
    if (r.has_caught_up()) caught_up.push_back(r.caught_up().global_position());
    return true;
  });
  {
    absl::MutexLock lock(&mu);
    auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !caught_up.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30)));
  }
  ASSERT_TRUE(TryAppend("order-1", Events(3, "Tick")).ok());
  {
    absl::MutexLock lock(&mu);
    auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return rest.size() >= 266; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(30)));
  }
  absl::SleepFor(absl::Milliseconds(200));  // A duplicate would show up now.
  resumed->Stop();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(caught_up, std::vector<uint64_t>{1000});
  ASSERT_EQ(rest.size(), 266u);
  for (size_t i = 0; i < rest.size(); ++i) ASSERT_EQ(rest[i], 738 + i);
  EXPECT_TRUE(all_single);

  // A caller that sets the field gets the server's messages as they are.
  std::vector<int> sizes;
  uint64_t next = 1;
  bool in_order = true;
  v1::SubscribeRequest batched = All();
  batched.set_max_events_per_message(64);
  auto raw = client.Subscribe(batched, [&](const v1::SubscribeResponse& r) {
    if (r.has_caught_up()) return false;
    EXPECT_FALSE(r.has_event());
    if (r.has_events()) {
      sizes.push_back(r.events().events_size());
      for (const auto& e : r.events().events()) in_order = in_order && e.global_position() == next++;
    }
    return true;
  });
  ASSERT_TRUE(raw->Wait().ok());
  EXPECT_TRUE(in_order);
  EXPECT_EQ(next, 1004u);
  for (int n : sizes) EXPECT_LE(n, 64);
  EXPECT_EQ(sizes.front(), 64);
}

}  // namespace
}  // namespace logbook
