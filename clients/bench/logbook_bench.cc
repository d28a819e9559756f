// logbook-bench: drives a running logbookd over gRPC and reports what it
// measured, as JSON. Scenarios (issue 5):
//   append-single     64 clients, each on its own stream, one event per
//                     Append with an exact expected version
//   append-batch      8 clients, 100 events per Append
//   append-contended  64 clients on 4 streams, retrying on ABORTED; reports
//                     successful events/s and the conflict rate
//   append            the same closed loop with any --clients/--batch/--streams
//   catch-up          one subscriber reads --events (1,000,000) events of $all
//                     from the start until caught_up, in batched messages;
//                     first appends what the log lacks of that many. Checks
//                     that it got positions 1..N exactly, once each.
//   live-latency      append-to-delivery latency of live subscriptions at a
//                     fixed append rate (default: 1,000 appends/s, 100
//                     subscribers of which 10 on $all and 90 on 9 categories)
//   group             a consumer group on $all (--strategy round-robin or
//                     per-stream), 4 consumers acking each event: first the
//                     time to ack a backlog of --events (1,000,000) events
//                     spread over --streams (1,000) streams, appended first
//                     (or, with --after-position, already in the log), then
//                     append-to-delivery latency of live events at --rate
//                     (1,000) appends/s. Checks that every backlog and live
//                     event was delivered.
// Exit code 1 when appends failed or a subscriber got the wrong events.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>
#include <unordered_set>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "logbook/client/client.h"
#include "logbook/client/worker.h"
#include "nlohmann/json.hpp"

namespace {

// TLS to logbookd for every channel of this run (--tls-ca, --tls-cert,
// --tls-key); plaintext unless set in main.
logbook::ClientTls& Tls() {
  static logbook::ClientTls tls;
  return tls;
}

// The bearer token of every call of this run (--token); empty: none.
std::string& Token() {
  static std::string token;
  return token;
}

// Every channel the benchmark opens stays open until the process exits. A
// scenario ends when its calls have reported their results, but gRPC tears
// each call down afterwards, on its callback thread; a call that held the
// last reference to its channel then destroyed the channel there, and with
// it (gRPC 1.51) the completion queue that thread was polling: a crash
// after about 1 in 10 runs with TLS, whose teardown is slower.
void KeepUntilExit(std::shared_ptr<grpc::Channel> channel) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* kept = new std::vector<std::shared_ptr<grpc::Channel>>;  // Never freed.
  absl::MutexLock lock(&mu);
  kept->push_back(std::move(channel));
}

logbook::ClientOptions Options(const std::string& address) {
  logbook::ClientOptions o;
  o.address = address;
  o.tls = Tls();
  o.token = Token();
  return o;
}

namespace v1 = logbook::v1;
using Clock = std::chrono::steady_clock;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// A live subscription on gRPC's callback API that records, for each event,
// now minus the send time the appender put into the event's data.
class LatencySubscriber final : public grpc::ClientReadReactor<v1::SubscribeResponse> {
 public:
  LatencySubscriber(v1::EventStore::Stub& stub, const v1::SubscribeRequest& request) {
    logbook::AddCallMetadata(ctx_, Options(""));
    stub.async()->Subscribe(&ctx_, &request, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (response_.has_event()) {
      Measure(NowNanos(), response_.event());
    } else if (response_.has_events()) {
      const int64_t now = NowNanos();
      for (const auto& e : response_.events().events()) Measure(now, e);
    } else if (response_.has_caught_up()) {
      caught_up_ = true;
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  void Record(bool on) { recording_ = on; }
  void Measure(int64_t now, const v1::RecordedEvent& event) {
    // Data is {"t":<nanos>,...}; parse the number without a JSON parser.
    const int64_t sent = std::atoll(event.data().c_str() + 5);
    if (sent > 0 && recording_.load()) {
      absl::MutexLock lock(&mu_);
      latencies_us_.push_back((now - sent) / 1000.0);
    }
  }
  bool caught_up() const { return caught_up_.load(); }
  void Cancel() {
    ctx_.TryCancel();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }
  std::vector<double> latencies() {
    absl::MutexLock lock(&mu_);
    return latencies_us_;
  }

 private:
  grpc::ClientContext ctx_;
  v1::SubscribeResponse response_;
  std::atomic<bool> recording_{false};
  std::atomic<bool> caught_up_{false};
  absl::Mutex mu_;
  std::vector<double> latencies_us_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

// `appenders` threads append one event each, together `rate` a second,
// from `start` until `end`: event i (0, 1, 2, ... over all threads) to
// stream `stream(i)`, its data {"t": nanoseconds when sent, "pad": `pad`
// x's}. `done(i, result, sent)` is called for every append that
// succeeded, on its thread; `appended` and `failed` count. Returns the
// threads, for the caller to join.
std::vector<std::thread> PacedAppends(logbook::Client& client, int appenders, int rate,
                                      size_t pad, Clock::time_point start,
                                      Clock::time_point end,
                                      std::function<std::string(int64_t)> stream,
                                      std::function<void(int64_t, const v1::AppendResponse&,
                                                         int64_t sent)> done,
                                      std::atomic<int64_t>& appended,
                                      std::atomic<int64_t>& failed) {
  std::vector<std::thread> threads;
  for (int t = 0; t < appenders; ++t) {
    threads.emplace_back([&client, appenders, rate, pad, start, end, stream, done, &appended,
                          &failed, t] {
      const auto interval = std::chrono::nanoseconds(1'000'000'000LL * appenders / rate);
      auto next = start + interval * t / appenders;
      for (int64_t i = t; Clock::now() < end; i += appenders) {
        std::this_thread::sleep_until(next);
        next += interval;
        v1::EventData event;
        event.set_type("Tick");
        event.set_data("{\"t\":" + std::to_string(NowNanos()) + ",\"pad\":\"" +
                       std::string(pad, 'x') + "\"}");
        const int64_t sent = NowNanos();
        auto r = client.Append(stream(i), logbook::expect::Any(), {event});
        if (r.ok()) {
          ++appended;
          done(i, *r, sent);
        } else {
          ++failed;
        }
      }
    });
  }
  return threads;
}

struct LiveLatencyOptions {
  int rate = 1000;          // Appends per second.
  int seconds = 10;         // Measured duration.
  int warmup_seconds = 2;   // Not measured.
  int all_subscribers = 10;
  int category_subscribers = 90;
  int categories = 9;
  int appenders = 8;        // Threads sharing the rate.
  int events_per_message = 500;  // max_events_per_message (as the C++ client asks).
};

nlohmann::json LiveLatency(const std::string& address, const LiveLatencyOptions& o) {
  logbook::ClientOptions client_options = Options(address);
  logbook::Client client(client_options);
  KeepUntilExit(client.channel());
  const std::string run = logbook::NewEventId().substr(28);  // Fresh categories per run.
  auto category = [&](int c) { return "bench" + run + "c" + std::to_string(c); };

  std::vector<std::unique_ptr<LatencySubscriber>> subscribers;
  for (int i = 0; i < o.all_subscribers + o.category_subscribers; ++i) {
    v1::SubscribeRequest request;
    if (i < o.all_subscribers) {
      request.mutable_all();
    } else {
      request.set_category(category(i % o.categories));
    }
    request.mutable_from_now();
    request.set_max_events_per_message(o.events_per_message);
    subscribers.push_back(std::make_unique<LatencySubscriber>(client.stub(), request));
  }
  for (auto& s : subscribers) {
    while (!s->caught_up()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::fprintf(stderr, "live-latency: %zu subscribers live; appending at %d/s for %d s (+%d s warm-up)\n",
               subscribers.size(), o.rate, o.seconds, o.warmup_seconds);

  std::atomic<int64_t> appended{0}, failed{0};
  std::atomic<bool> recording{false};
  absl::Mutex append_mu;
  std::vector<double> append_us;
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::seconds(o.warmup_seconds);
  const auto end = measure_from + std::chrono::seconds(o.seconds);
  std::vector<std::thread> appenders = PacedAppends(
      client, o.appenders, o.rate, 150, start, end,
      [&](int64_t i) { return category(i % o.categories) + "-" + std::to_string(i % 100); },
      [&](int64_t, const v1::AppendResponse&, int64_t sent) {
        if (recording.load()) {
          absl::MutexLock lock(&append_mu);
          append_us.push_back((NowNanos() - sent) / 1000.0);
        }
      },
      appended, failed);
  std::this_thread::sleep_until(measure_from);
  const int64_t appended_at_start = appended.load();
  for (auto& s : subscribers) s->Record(true);
  recording = true;
  std::this_thread::sleep_until(end);
  recording = false;
  const int64_t measured_appends = appended.load() - appended_at_start;
  for (auto& t : appenders) t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // Let deliveries land.
  for (auto& s : subscribers) s->Record(false);

  std::vector<double> all;
  for (auto& s : subscribers) {
    auto l = s->latencies();
    all.insert(all.end(), l.begin(), l.end());
    s->Cancel();
  }
  std::sort(all.begin(), all.end());
  nlohmann::json result = {
      {"scenario", "live-latency"},
      {"target_appends_per_s", o.rate},
      {"appends_per_s", static_cast<double>(measured_appends) / o.seconds},
      {"failed_appends", failed.load()},
      {"failures", failed.load()},
      {"subscribers", subscribers.size()},
      {"deliveries", all.size()},
      {"latency_p50_ms", Percentile(all, 0.50) / 1000},
      {"latency_p99_ms", Percentile(all, 0.99) / 1000},
      {"latency_max_ms", all.empty() ? 0 : all.back() / 1000},
  };
  absl::MutexLock lock(&append_mu);
  std::sort(append_us.begin(), append_us.end());
  result["append_p50_ms"] = Percentile(append_us, 0.50) / 1000;
  result["append_p99_ms"] = Percentile(append_us, 0.99) / 1000;
  return result;
}

struct AppendOptions {
  int clients = 64;
  int batch = 1;        // Events per append.
  int streams = 0;      // 0: one stream per client; otherwise shared, retrying on ABORTED.
  int seconds = 10;
  int payload = 150;    // Padding bytes: ~200-byte JSON events.
};

// One closed-loop client of Appends: one append in flight at a time,
// started from the previous one's completion (on a gRPC thread), so 64
// clients need 64 calls in flight, not 64 threads.
struct AppendLoop {
  std::string stream;
  int64_t version = -1;  // Unknown until the first append or conflict says.
  std::vector<double> latencies_us;
  int64_t sent_nanos = 0;
};

nlohmann::json Appends(const std::string& address, const AppendOptions& o) {
  logbook::ClientOptions client_options = Options(address);
  logbook::Client client(client_options);
  KeepUntilExit(client.channel());
  const std::string run = logbook::NewEventId().substr(28);
  const std::string data = "{\"pad\":\"" + std::string(o.payload, 'x') + "\"}";
  std::atomic<int64_t> events{0}, conflicts{0}, failed{0};
  const auto end = Clock::now() + std::chrono::seconds(o.seconds);
  const int streams = o.streams > 0 ? o.streams : o.clients;
  std::vector<AppendLoop> loops(o.clients);
  absl::BlockingCounter finished(o.clients);
  std::function<void(AppendLoop&)> next = [&](AppendLoop& loop) {
    if (Clock::now() >= end) {
      finished.DecrementCount();
      return;
    }
    std::vector<v1::EventData> batch(o.batch);
    for (auto& e : batch) {
      e.set_type("Tick");
      e.set_data(data);
    }
    const v1::ExpectedVersion expected =
        loop.version < 0 ? (o.streams > 0 ? logbook::expect::Any() : logbook::expect::NoStream())
                         : logbook::expect::Exact(loop.version);
    loop.sent_nanos = NowNanos();
    client.AppendAsync(loop.stream, expected, std::move(batch),
                       [&](absl::StatusOr<v1::AppendResponse> result) {
                         if (result.ok()) {
                           loop.latencies_us.push_back((NowNanos() - loop.sent_nanos) / 1000.0);
                           events += o.batch;
                           loop.version = static_cast<int64_t>(result->last_version());
                         } else if (absl::IsAborted(result.status())) {
                           ++conflicts;
                           // Retry at the version the server reported.
                           const auto actual = logbook::ActualVersion(result.status());
                           loop.version = actual ? static_cast<int64_t>(*actual) : -1;
                         } else {
                           // Not retried: the run reports failed appends.
                           ++failed;
                           finished.DecrementCount();
                           return;
                         }
                         next(loop);
                       });
  };
  for (int c = 0; c < o.clients; ++c) {
    loops[c].stream = "bench" + run + "-" + std::to_string(c % streams);
    next(loops[c]);
  }
  finished.Wait();
  std::vector<double> latencies_us;
  for (const auto& loop : loops) {
    latencies_us.insert(latencies_us.end(), loop.latencies_us.begin(), loop.latencies_us.end());
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  const double appends = static_cast<double>(latencies_us.size());
  return {{"scenario", o.streams > 0 ? "append-contended" : (o.batch > 1 ? "append-batch"
                                                                            : "append-single")},
          {"clients", o.clients},
          {"events_per_append", o.batch},
          {"streams", o.streams > 0 ? o.streams : o.clients},
          {"events_per_s", static_cast<double>(events.load()) / o.seconds},
          {"append_p50_ms", Percentile(latencies_us, 0.50) / 1000},
          {"append_p99_ms", Percentile(latencies_us, 0.99) / 1000},
          {"conflict_rate", appends + conflicts.load() > 0
                                ? conflicts.load() / (appends + conflicts.load())
                                : 0.0},
          {"failed_appends", failed.load()},
          {"failures", failed.load()}};
}

struct CatchUpOptions {
  uint64_t events = 1000000;  // Events to read; appended first if the log has fewer.
  int events_per_message = -1;  // -1: leave unset (the client asks for 500 and unpacks).
  int fill_clients = 8;       // Appenders filling the log.
  int fill_batch = 1000;      // Events per filling Append.
  int payload = 150;          // Padding bytes: ~200-byte JSON events.
  bool fill_only = false;     // Only append what the log lacks; no subscriber.
};

// The log's last position (0 when empty).
// How many events of $all lie in (after, through], read in pages.
absl::StatusOr<uint64_t> CountEvents(logbook::Client& client, uint64_t after, uint64_t through) {
  uint64_t n = 0;
  for (uint64_t from = after + 1; from <= through;) {
    v1::ReadAllRequest request;
    request.set_from_position(from);
    request.set_until_position(through);
    request.set_max_count(10000);
    absl::StatusOr<std::vector<v1::RecordedEvent>> page = client.ReadAll(request);
    if (!page.ok()) return page.status();
    if (page->empty()) break;
    n += page->size();
    from = page->back().global_position() + 1;
  }
  return n;
}

absl::StatusOr<uint64_t> Head(logbook::Client& client) {
  v1::ReadAllRequest request;
  request.set_direction(v1::BACKWARD);
  request.set_max_count(1);
  auto last = client.ReadAll(request);
  if (!last.ok()) return last.status();
  return last->empty() ? 0 : last->front().global_position();
}

nlohmann::json CatchUp(const std::string& address, const CatchUpOptions& o) {
  logbook::ClientOptions client_options = Options(address);
  client_options.call_timeout = absl::Minutes(10);
  logbook::Client client(client_options);
  KeepUntilExit(client.channel());
  auto head = Head(client);
  if (!head.ok()) {
    std::fprintf(stderr, "catch-up: cannot read the head: %s\n", head.status().ToString().c_str());
    return {{"scenario", "catch-up"}, {"failures", 1}};
  }

  // Fill the log up to o.events.
  std::atomic<int64_t> to_append{static_cast<int64_t>(o.events) - static_cast<int64_t>(*head)};
  std::atomic<int64_t> fill_failures{0};
  const int64_t filling = std::max<int64_t>(0, to_append.load());
  const auto fill_start = Clock::now();
  if (filling > 0) {
    std::fprintf(stderr, "catch-up: appending %lld events first\n",
                 static_cast<long long>(filling));
    const std::string run = logbook::NewEventId().substr(28);
    std::vector<std::thread> threads;
    for (int c = 0; c < o.fill_clients; ++c) {
      threads.emplace_back([&, c] {
        const std::string stream = "fill" + run + "-" + std::to_string(c);
        for (;;) {
          const int64_t n = std::min<int64_t>(o.fill_batch, to_append.fetch_sub(o.fill_batch));
          if (n <= 0) break;
          std::vector<v1::EventData> batch(n);
          for (auto& e : batch) {
            e.set_type("Tick");
            e.set_data("{\"pad\":\"" + std::string(o.payload, 'x') + "\"}");
          }
          if (!client.Append(stream, logbook::expect::Any(), std::move(batch)).ok()) {
            ++fill_failures;
            break;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  const double fill_seconds = std::chrono::duration<double>(Clock::now() - fill_start).count();
  head = Head(client);
  if (!head.ok() || fill_failures > 0) {
    std::fprintf(stderr, "catch-up: filling the log failed\n");
    return {{"scenario", "catch-up"}, {"failures", 1}};
  }

  if (o.fill_only) {
    return {{"scenario", "fill"},
            {"head", *head},
            {"filled_events", filling},
            {"fill_events_per_s", filling > 0 ? filling / fill_seconds : 0.0},
            {"failures", 0}};
  }

  // Read the last o.events events (all of them when the log was filled here).
  const uint64_t after = *head > o.events ? *head - o.events : 0;
  v1::SubscribeRequest request;
  request.mutable_all();
  if (after > 0) request.set_after_position(after);
  if (o.events_per_message >= 0) request.set_max_events_per_message(o.events_per_message);
  uint64_t events = 0, messages = 0, next = after + 1, caught_up_at = 0;
  int max_batch = 0;  // Most events in one handler call.
  bool in_order = true, contiguous = true;
  auto take = [&](const v1::RecordedEvent& e) {
    in_order = in_order && e.global_position() >= next;
    contiguous = contiguous && e.global_position() == next;
    next = e.global_position() + 1;
    ++events;
  };
  const auto start = Clock::now();
  auto subscription = client.Subscribe(request, [&](const v1::SubscribeResponse& r) {
    ++messages;
    if (r.has_event()) {
      take(r.event());
      max_batch = std::max(max_batch, 1);
    }
    if (r.has_events()) {
      for (const auto& e : r.events().events()) take(e);
      max_batch = std::max(max_batch, r.events().events_size());
    }
    if (r.has_caught_up()) {
      caught_up_at = r.caught_up().global_position();
      return false;
    }
    return true;
  });
  const absl::Status status = subscription->Wait();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // Exact: every event of after+1 .. head, each once, in order, then
  // caught_up at head. Positions a failed write used are recorded gaps
  // (an append retried while its first attempt was still running, say):
  // then the events there are counted with ReadAll, after the timing.
  uint64_t expected = *head - after;
  if (status.ok() && in_order && !contiguous) {
    absl::StatusOr<uint64_t> counted = CountEvents(client, after, *head);
    expected = counted.ok() ? *counted : 0;
    std::fprintf(stderr,
                 "catch-up: the window holds unused positions; ReadAll counts %llu events\n",
                 static_cast<unsigned long long>(expected));
  }
  const bool exact = status.ok() && in_order && caught_up_at == *head && events == expected;
  if (!exact) {
    std::fprintf(stderr,
                 "catch-up: expected the %llu events of positions %llu..%llu once each, got %llu "
                 "events (in order: %d), caught_up at %llu, status %s\n",
                 static_cast<unsigned long long>(expected),
                 static_cast<unsigned long long>(after + 1), static_cast<unsigned long long>(*head),
                 static_cast<unsigned long long>(events), in_order,
                 static_cast<unsigned long long>(caught_up_at), status.ToString().c_str());
  }
  return {{"scenario", "catch-up"},
          {"events", events},
          {"from_position", after + 1},
          {"caught_up_at", caught_up_at},
          {"handler_calls", messages},
          {"max_events_per_call", max_batch},
          {"max_events_per_message", o.events_per_message < 0 ? "client default (500)"
                                                              : std::to_string(o.events_per_message)},
          {"seconds", seconds},
          {"events_per_s", events / seconds},
          {"filled_events", filling},
          {"fill_events_per_s", filling > 0 ? filling / fill_seconds : 0.0},
          {"exact", exact},
          {"failures", exact ? 0 : 1}};
}

// --- read: a client pages through history with ReadAll or ReadStream.
struct ReadOptions {
  std::string target = "all";  // "all": the last --events of $all; "stream": one stream.
  uint64_t events = 1000000;
  uint64_t page = 100000;       // max_count of each call.
  int events_per_message = -1;  // -1: leave unset (the client asks for 500).
  bool fill_only = false;       // stream: only append what the stream lacks.
  int payload = 150;            // Padding bytes of the events a stream is filled with.
};

// Appends to `stream` until it has `events` events (1,000 per append), one
// client: a stream is written in order.
absl::Status FillStream(logbook::Client& client, const std::string& stream, uint64_t events,
                        int payload) {
  absl::StatusOr<v1::StreamInfo> info = client.GetStream(stream);
  uint64_t have = info.ok() ? info->version() + 1 : 0;
  if (!info.ok() && info.status().code() != absl::StatusCode::kNotFound) return info.status();
  if (have < events) {
    std::fprintf(stderr, "read: appending %llu events to %s first\n",
                 static_cast<unsigned long long>(events - have), stream.c_str());
  }
  while (have < events) {
    std::vector<v1::EventData> batch(std::min<uint64_t>(1000, events - have));
    for (auto& e : batch) {
      e.set_type("Tick");
      e.set_data("{\"pad\":\"" + std::string(payload, 'x') + "\"}");
    }
    const size_t n = batch.size();
    absl::StatusOr<v1::AppendResponse> r = client.Append(
        stream, have == 0 ? logbook::expect::NoStream() : logbook::expect::Exact(have - 1),
        std::move(batch));
    if (!r.ok()) return r.status();
    have += n;
  }
  return absl::OkStatus();
}

nlohmann::json Read(const std::string& address, const ReadOptions& o) {
  const std::string scenario = o.target == "all" ? "read-all" : "read-stream";
  logbook::ClientOptions client_options = Options(address);
  client_options.call_timeout = absl::Minutes(10);
  logbook::Client client(client_options);
  KeepUntilExit(client.channel());
  const std::string stream = "read-bench";
  uint64_t first = 0;  // The first position (all) or version (stream) to read.
  if (o.target == "stream") {
    if (absl::Status s = FillStream(client, stream, o.events, o.payload); !s.ok()) {
      std::fprintf(stderr, "read: filling %s failed: %s\n", stream.c_str(), s.ToString().c_str());
      return {{"scenario", scenario}, {"failures", 1}};
    }
    if (o.fill_only) return {{"scenario", "fill"}, {"stream", stream}, {"failures", 0}};
  } else {
    absl::StatusOr<uint64_t> head = Head(client);
    if (!head.ok() || *head < o.events) {
      std::fprintf(stderr, "read: the log needs %llu events (fill it with catch-up --fill-only)\n",
                   static_cast<unsigned long long>(o.events));
      return {{"scenario", scenario}, {"failures", 1}};
    }
    first = *head - o.events + 1;
  }
  // Exact: every position (version) of the window once, in order.
  uint64_t events = 0, calls = 0, next = first;
  bool contiguous = true;
  const auto start = Clock::now();
  while (events < o.events) {
    const uint64_t want = std::min(o.page, o.events - events);
    absl::StatusOr<std::vector<v1::RecordedEvent>> page;
    if (o.target == "stream") {
      v1::ReadStreamRequest request;
      request.set_stream_id(stream);
      request.set_from_version(next);
      request.set_max_count(want);
      if (o.events_per_message >= 0) request.set_max_events_per_message(o.events_per_message);
      page = client.ReadStream(request);
    } else {
      v1::ReadAllRequest request;
      request.set_from_position(next);
      request.set_max_count(want);
      if (o.events_per_message >= 0) request.set_max_events_per_message(o.events_per_message);
      page = client.ReadAll(request);
    }
    ++calls;
    if (!page.ok() || page->empty()) {
      std::fprintf(stderr, "read: a page failed: %s\n",
                   page.ok() ? "no events" : page.status().ToString().c_str());
      return {{"scenario", scenario}, {"failures", 1}};
    }
    for (const v1::RecordedEvent& e : *page) {
      const uint64_t at = o.target == "stream" ? e.stream_version() : e.global_position();
      contiguous = contiguous && at == next;
      next = at + 1;
    }
    events += page->size();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const bool exact = contiguous && events == o.events;
  if (!exact) std::fprintf(stderr, "read: the events were not the window, each once, in order\n");
  return {
      {"scenario", scenario},
      {"events", events},
      {"page", o.page},
      {"max_events_per_message",
       o.events_per_message < 0 ? "client default (500)" : std::to_string(o.events_per_message)},
      {"calls", calls},
      {"first", first},
      {"seconds", seconds},
      {"events_per_s", events / seconds},
      {"exact", exact},
      {"failures", exact ? 0 : 1}};
}

// --- group: a consumer group on $all, its backlog, then live events.

struct GroupOptions {
  std::string strategy = "round-robin";  // Or "per-stream".
  uint64_t events = 1000000;   // The backlog.
  int streams = 1000;          // Streams the backlog and the live events are spread over.
  int64_t after_position = -1; // -1: append the backlog first; else it is the events after this.
  int consumers = 4;
  std::string client = "worker";  // logbook::Worker, or "raw" Consume streams.
  int max_in_flight = 100;     // The group's setting: unacked deliveries per consumer.
  int ack_batch = 100;         // Worker: most ids per ack message.
  int fill_clients = 8;        // Appenders of the backlog...
  int fill_batch = 10;         // ...each append this many events to the next stream in turn.
  int payload = 150;           // Padding bytes: ~200-byte JSON events.
  int rate = 1000;             // Live: appends of one event per second...
  int seconds = 10;            // ...measured this long...
  int warmup_seconds = 1;      // ...after this.
  int appenders = 8;
  int timeout_seconds = 1800;  // The backlog must be acked within this.
};

// What a group's consumers got: each backlog position's deliveries, and the
// append-to-delivery latency of live events (their data starts {"t":<nanos>).
class GroupTally {
 public:
  GroupTally(uint64_t after, uint64_t events) : after_(after), seen_(events) {}

  void Record(const v1::Delivery& d, int64_t now) {
    ++deliveries_;
    const uint64_t pos = d.delivery_id();
    if (pos > after_ && pos <= after_ + seen_.size()) {
      if (seen_[pos - after_ - 1].fetch_add(1, std::memory_order_relaxed) == 0) {
        ++backlog_distinct_;
      } else {
        ++redeliveries_;
      }
      return;
    }
    const std::string& data = d.event().data();
    if (data.rfind("{\"t\":", 0) != 0) {
      ++other_;
      return;
    }
    const int64_t sent = std::atoll(data.c_str() + 5);
    absl::MutexLock lock(&mu_);
    if (!live_.insert(pos).second) {
      ++redeliveries_;
      return;
    }
    if (recording_ && sent > 0) latencies_us_.push_back((now - sent) / 1000.0);
  }

  void Recording(bool on) {
    absl::MutexLock lock(&mu_);
    recording_ = on;
  }
  uint64_t backlog_distinct() const { return backlog_distinct_.load(); }
  uint64_t deliveries() const { return deliveries_.load(); }
  uint64_t redeliveries() const { return redeliveries_.load(); }
  uint64_t other() const { return other_.load(); }
  // How many of `positions` no consumer got.
  size_t LiveMissing(const std::vector<uint64_t>& positions) {
    absl::MutexLock lock(&mu_);
    return std::count_if(positions.begin(), positions.end(),
                         [&](uint64_t p) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !live_.count(p); });
  }
  std::vector<double> latencies() {
    absl::MutexLock lock(&mu_);
    return latencies_us_;
  }

 private:
  const uint64_t after_;
  std::vector<std::atomic<uint8_t>> seen_;  // Deliveries of each backlog position (saturates).
  std::atomic<uint64_t> backlog_distinct_{0}, deliveries_{0}, redeliveries_{0}, other_{0};
  absl::Mutex mu_;
  std::unordered_set<uint64_t> live_ ABSL_GUARDED_BY(mu_);
  bool recording_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<double> latencies_us_ ABSL_GUARDED_BY(mu_);
};

class GroupConsumer {
 public:
  virtual ~GroupConsumer() = default;
  // Ends the consumer and waits for it.
  virtual void Stop() = 0;
  // Whether it ended by itself (an error).
  virtual bool ended() = 0;
  virtual absl::Status status() = 0;
};

// A logbook::Worker on a Client of its own, its handler only counting.
class WorkerConsumer final : public GroupConsumer {
 public:
  WorkerConsumer(const std::string& address, logbook::WorkerOptions options, GroupTally& tally)
      : client_(ClientFor(address)),
        worker_(client_, std::move(options),
                [&tally](const v1::Delivery& d) {
                  tally.Record(d, NowNanos());
                  return absl::OkStatus();
                }),
        thread_([this] {
          KeepUntilExit(client_.channel());
          absl::Status s = worker_.Run();
          absl::MutexLock lock(&mu_);
          status_ = s;
          ended_ = true;
        }) {}
  ~WorkerConsumer() override { Stop(); }

  void Stop() override {
    worker_.Stop();
    if (thread_.joinable()) thread_.join();
  }
  bool ended() override {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  absl::Status status() override {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  static logbook::ClientOptions ClientFor(const std::string& address) { return Options(address); }
  logbook::Client client_;
  logbook::Worker worker_;
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts after the members above.
};

// A raw Consume stream on a channel (and connection) of its own, on gRPC's
// callback API: it acks every delivery as it is read, all that arrived
// while the previous ack was being written going in one message.
class RawConsumer final : public GroupConsumer,
                          public grpc::ClientBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse> {
 public:
  RawConsumer(const std::string& address, const std::string& group, const std::string& consumer,
              GroupTally& tally)
      : tally_(tally) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(address, logbook::ChannelCredentials(Tls()), args);
    KeepUntilExit(channel_);
    stub_ = v1::EventStore::NewStub(channel_);
    logbook::AddCallMetadata(ctx_, Options(""));
    stub_->async()->Consume(&ctx_, this);
    join_.mutable_join()->set_group(group);
    join_.mutable_join()->set_consumer(consumer);
    writing_ = true;
    StartWrite(&join_);
    StartRead(&response_);
    StartCall();
  }
  ~RawConsumer() override { Stop(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (response_.has_delivery()) {
      tally_.Record(response_.delivery(), NowNanos());
      absl::MutexLock lock(&mu_);
      acks_.push_back(response_.delivery().delivery_id());
      WriteAcks();
    }
    StartRead(&response_);
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    broken_ = broken_ || !ok;
    WriteAcks();
  }
  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  void Stop() override {
    ctx_.TryCancel();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }
  bool ended() override {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  absl::Status status() override {
    absl::MutexLock lock(&mu_);
    return absl::Status(static_cast<absl::StatusCode>(status_.error_code()),
                        status_.error_message());
  }

 private:
  // Called only from a read's or write's reaction, so never after OnDone.
  void WriteAcks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || broken_ || acks_.empty()) return;
    ack_.Clear();
    ack_.mutable_ack()->mutable_delivery_ids()->Add(acks_.begin(), acks_.end());
    acks_.clear();
    writing_ = true;
    StartWrite(&ack_);
  }

  GroupTally& tally_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EventStore::Stub> stub_;
  grpc::ClientContext ctx_;
  v1::ConsumeRequest join_, ack_;
  v1::ConsumeResponse response_;
  absl::Mutex mu_;
  std::vector<uint64_t> acks_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

nlohmann::json Group(const std::string& address, const GroupOptions& o) {
  logbook::ClientOptions client_options = Options(address);
  client_options.call_timeout = absl::Minutes(10);
  logbook::Client client(client_options);
  KeepUntilExit(client.channel());
  const std::string run = logbook::NewEventId().substr(28);
  const bool per_stream = o.strategy == "per-stream";
  nlohmann::json result = {{"scenario", "group"},
                           {"strategy", o.strategy},
                           {"consumers", o.consumers},
                           {"client", o.client},
                           {"max_in_flight", o.max_in_flight},
                           {"streams", o.streams},
                           {"backlog_events", o.events}};
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "group: %s\n", why.c_str());
    result["error"] = why;
    result["failures"] = 1;
    return result;
  };
  auto head = Head(client);
  if (!head.ok()) return fail("cannot read the head: " + head.status().ToString());

  // 1. The backlog: o.events events after `after`, each stream's appends of
  // fill_batch events taking turns, so any stretch of the log holds events
  // of every stream.
  uint64_t after = 0;
  int64_t filled = 0;
  double fill_seconds = 0;
  if (o.after_position >= 0) {
    after = static_cast<uint64_t>(o.after_position);
    if (*head < after + o.events) {
      return fail("the log has no " + std::to_string(o.events) + " events after position " +
                  std::to_string(after));
    }
  } else {
    after = *head;
    std::fprintf(stderr, "group: appending a backlog of %llu events over %d streams\n",
                 static_cast<unsigned long long>(o.events), o.streams);
    std::atomic<int64_t> next{0}, fill_failures{0};
    const auto fill_start = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < o.fill_clients; ++c) {
      threads.emplace_back([&] {
        for (;;) {
          const int64_t i = next.fetch_add(1);
          const int64_t first = i * o.fill_batch;
          if (first >= static_cast<int64_t>(o.events)) break;
          std::vector<v1::EventData> batch(
              std::min<int64_t>(o.fill_batch, static_cast<int64_t>(o.events) - first));
          for (auto& e : batch) {
            e.set_type("Tick");
            e.set_data("{\"pad\":\"" + std::string(o.payload, 'x') + "\"}");
          }
          const std::string stream = "grp" + run + "-" + std::to_string(i % o.streams);
          if (!client.Append(stream, logbook::expect::Any(), std::move(batch)).ok()) {
            ++fill_failures;
            break;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    fill_seconds = std::chrono::duration<double>(Clock::now() - fill_start).count();
    filled = static_cast<int64_t>(o.events);
    if (fill_failures > 0) return fail("appending the backlog failed");
    head = Head(client);
    if (!head.ok() || *head != after + o.events) {
      return fail("the log grew by more than the backlog meanwhile");
    }
  }
  result["from_position"] = after + 1;
  result["filled_events"] = filled;
  result["fill_events_per_s"] = filled > 0 ? filled / fill_seconds : 0.0;

  // 2. The group, on $all after `after`.
  const std::string group = "bench-" + run + "-" + o.strategy;
  v1::CreateConsumerGroupRequest create;
  create.set_group(group);
  create.mutable_target()->mutable_all();
  create.set_after_position(after);
  create.mutable_settings()->set_strategy(per_stream ? v1::PER_STREAM : v1::ROUND_ROBIN);
  create.mutable_settings()->set_max_in_flight(o.max_in_flight);
  if (auto created = client.CreateConsumerGroup(create); !created.ok()) {
    return fail("cannot create the group: " + created.status().ToString());
  }

  // 3. The backlog, timed from the consumers' start until the group's
  // checkpoint passed it: every event delivered and its ack stored.
  GroupTally tally(after, o.events);
  std::vector<std::unique_ptr<GroupConsumer>> consumers;
  const auto start = Clock::now();
  for (int i = 0; i < o.consumers; ++i) {
    const std::string name = "c" + std::to_string(i);
    if (o.client == "raw") {
      consumers.push_back(std::make_unique<RawConsumer>(address, group, name, tally));
    } else {
      logbook::WorkerOptions w;
      w.group = group;
      w.consumer = name;
      w.ack_batch_size = o.ack_batch;
      consumers.push_back(std::make_unique<WorkerConsumer>(address, w, tally));
    }
  }
  auto stop_all = [&] {
    for (auto& c : consumers) c->Stop();
    // Leave nothing behind: a group's pending rows slow the next one's claims.
    absl::Status s;
    for (int attempt = 0; attempt < 5; ++attempt) {
      s = client.DeleteConsumerGroup(group);
      if (s.ok() || absl::IsNotFound(s)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::fprintf(stderr, "group: cannot delete group %s: %s\n", group.c_str(),
                 s.ToString().c_str());
  };
  auto consumer_failed = [&]() -> std::string {
    for (auto& c : consumers) {
      if (c->ended()) return "a consumer ended: " + c->status().ToString();
    }
    return "";
  };
  const auto deadline = start + std::chrono::seconds(o.timeout_seconds);
  auto last_report = start;
  while (tally.backlog_distinct() < o.events) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto now = Clock::now();
    if (std::string why = consumer_failed(); !why.empty() || now > deadline) {
      stop_all();
      return fail(why.empty() ? "the backlog was not delivered in time (" +
                                    std::to_string(tally.backlog_distinct()) + " of " +
                                    std::to_string(o.events) + ")"
                              : why);
    }
    if (now - last_report >= std::chrono::seconds(5)) {
      last_report = now;
      std::fprintf(stderr, "group: %llu of %llu backlog events delivered, %.0f/s\n",
                   static_cast<unsigned long long>(tally.backlog_distinct()),
                   static_cast<unsigned long long>(o.events),
                   tally.backlog_distinct() / std::chrono::duration<double>(now - start).count());
    }
  }
  const double delivered_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t checkpoint = 0;
  for (;;) {
    auto info = client.GetConsumerGroup(group);
    if (info.ok()) checkpoint = info->checkpoint_position();
    if (checkpoint >= after + o.events) break;
    if (Clock::now() > deadline) {
      stop_all();
      return fail("the backlog's acks did not reach the group in time (checkpoint " +
                  std::to_string(checkpoint) + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double backlog_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::fprintf(stderr, "group: backlog of %llu acked in %.2f s (%.0f events/s); live at %d/s\n",
               static_cast<unsigned long long>(o.events), backlog_seconds,
               o.events / backlog_seconds, o.rate);

  // 4. Live: paced appends of one event to the streams in turn; latency is
  // append-to-delivery (to the consumer's handler).
  std::atomic<int64_t> appended{0}, failed{0};
  absl::Mutex positions_mu;
  std::vector<uint64_t> positions;
  std::vector<double> append_us;  // Measured appends' latencies (positions_mu).
  const auto live_start = Clock::now();
  const auto measure_from = live_start + std::chrono::seconds(o.warmup_seconds);
  const auto end = measure_from + std::chrono::seconds(o.seconds);
  std::vector<std::thread> appenders = PacedAppends(
      client, o.appenders, o.rate, o.payload, live_start, end,
      [&](int64_t i) { return "grplive" + run + "-" + std::to_string(i % o.streams); },
      [&](int64_t, const v1::AppendResponse& r, int64_t sent) {
        const double us = (NowNanos() - sent) / 1000.0;
        absl::MutexLock lock(&positions_mu);
        positions.push_back(r.last_position());
        if (Clock::now() >= measure_from) append_us.push_back(us);
      },
      appended, failed);
  std::this_thread::sleep_until(measure_from);
  const int64_t appended_at_start = appended.load();
  tally.Recording(true);
  std::this_thread::sleep_until(end);
  const int64_t measured_appends = appended.load() - appended_at_start;
  for (auto& t : appenders) t.join();
  tally.Recording(false);
  // Every live event delivered (waiting at most 10 s for the last ones).
  size_t missing = 0;
  {
    absl::MutexLock lock(&positions_mu);
    const auto wait_until = Clock::now() + std::chrono::seconds(10);
    while ((missing = tally.LiveMissing(positions)) > 0 && Clock::now() < wait_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto info = client.GetConsumerGroup(group);
  const std::string why = consumer_failed();
  stop_all();

  std::vector<double> latencies = tally.latencies();
  std::sort(latencies.begin(), latencies.end());
  {
    absl::MutexLock lock(&positions_mu);
    std::sort(append_us.begin(), append_us.end());
  }
  const bool exact = why.empty() && missing == 0 && failed == 0;
  if (!why.empty()) std::fprintf(stderr, "group: %s\n", why.c_str());
  if (missing > 0) std::fprintf(stderr, "group: %zu live events not delivered\n", missing);
  result.update(nlohmann::json{
      {"backlog_seconds", backlog_seconds},
      {"events_per_s", o.events / backlog_seconds},
      {"delivered_seconds", delivered_seconds},
      {"delivered_events_per_s", o.events / delivered_seconds},
      {"redeliveries", tally.redeliveries()},
      {"other_deliveries", tally.other()},
      {"target_appends_per_s", o.rate},
      {"appends_per_s", static_cast<double>(measured_appends) / o.seconds},
      {"failed_appends", failed.load()},
      {"live_deliveries", latencies.size()},
      {"live_missing", missing},
      {"latency_p50_ms", Percentile(latencies, 0.50) / 1000},
      {"latency_p99_ms", Percentile(latencies, 0.99) / 1000},
      {"latency_max_ms", latencies.empty() ? 0 : latencies.back() / 1000},
      // The share of the latency that is the append itself (its commit).
      {"append_p50_ms", Percentile(append_us, 0.50) / 1000},
      {"group_delivered", info.ok() ? info->delivered() : 0},
      {"group_acked", info.ok() ? info->acked() : 0},
      {"exact", exact},
      {"failures", exact ? 0 : 1}});
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  // As in logbookd: no Mutex deadlock detection (on in Debian's Abseil).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"logbook-bench: measures a running logbookd over gRPC"};
  app.option_defaults()->always_capture_default();
  std::string address = "127.0.0.1:50051", json_out;
  app.add_option("--address", address, "logbookd host:port")->envname("LOGBOOK_ADDRESS");
  app.add_option("--json", json_out, "Also write the results to this JSON file");
  std::string tls_ca, tls_cert, tls_key;
  app.add_option("--tls-ca", tls_ca, "Speak TLS, trusting the CAs in this PEM file")
      ->envname("LOGBOOK_TLS_CA");
  app.add_option("--tls-cert", tls_cert, "Present this PEM client certificate (mTLS)")
      ->envname("LOGBOOK_TLS_CERT");
  app.add_option("--tls-key", tls_key, "PEM key of --tls-cert")->envname("LOGBOOK_TLS_KEY");
  app.add_option("--token", Token(), "Bearer token sent with every call")
      ->envname("LOGBOOK_TOKEN");

  LiveLatencyOptions live;
  CLI::App* live_cmd = app.add_subcommand(
      "live-latency", "Append-to-delivery latency of live subscriptions at a fixed append rate");
  live_cmd->add_option("--rate", live.rate, "Appends per second (one event each)")
      ->check(CLI::Range(1, 1000000));
  live_cmd->add_option("--seconds", live.seconds, "Measured seconds")->check(CLI::Range(1, 3600));
  live_cmd->add_option("--warmup", live.warmup_seconds, "Unmeasured seconds first");
  live_cmd->add_option("--all-subscribers", live.all_subscribers, "Subscribers on $all");
  live_cmd->add_option("--category-subscribers", live.category_subscribers,
                       "Subscribers on categories");
  live_cmd->add_option("--categories", live.categories, "Categories appended to")
      ->check(CLI::Range(1, 1000));
  live_cmd->add_option("--appenders", live.appenders, "Appending threads")
      ->check(CLI::Range(1, 1000));
  live_cmd->add_option("--events-per-message", live.events_per_message,
                       "max_events_per_message of the subscriptions")
      ->check(CLI::Range(0, 100000));
  // append-single, append-batch and append-contended are `append` with the
  // issue's settings as defaults.
  struct AppendCommand {
    CLI::App* cmd;
    AppendOptions options;
  };
  std::vector<std::unique_ptr<AppendCommand>> appends;
  auto add_append = [&](const char* name, const char* help, AppendOptions defaults) {
    auto c = std::make_unique<AppendCommand>();
    c->options = defaults;
    c->cmd = app.add_subcommand(name, help);
    AppendOptions& o = c->options;
    c->cmd->add_option("--clients", o.clients, "Concurrent clients")->check(CLI::Range(1, 10000));
    c->cmd->add_option("--batch", o.batch, "Events per append")->check(CLI::Range(1, 1000));
    c->cmd->add_option("--streams", o.streams,
                       "Streams shared by all clients, retrying on ABORTED (0: one each)");
    c->cmd->add_option("--seconds", o.seconds, "Duration")->check(CLI::Range(1, 3600));
    c->cmd->add_option("--payload", o.payload, "Padding bytes per event");
    appends.push_back(std::move(c));
  };
  add_append("append-single", "64 clients, each on its own stream, 1 event per append",
             {64, 1, 0, 10, 150});
  add_append("append-batch", "8 clients, each on its own stream, 100 events per append",
             {8, 100, 0, 10, 150});
  add_append("append-contended", "64 clients on 4 streams, retrying on ABORTED",
             {64, 1, 4, 10, 150});
  add_append("append",
             "Closed-loop appends with exact expected versions (any clients/batch/streams)",
             AppendOptions{});
  CatchUpOptions catch_up;
  CLI::App* catch_up_cmd =
      app.add_subcommand("catch-up", "One subscriber reads $all from the start until caught_up");
  catch_up_cmd->add_option("--events", catch_up.events,
                           "Events to read (appended first if the log has fewer)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  catch_up_cmd->add_option("--events-per-message", catch_up.events_per_message,
                           "max_events_per_message (-1: the client's default, 500, unpacked)")
      ->check(CLI::Range(-1, 100000));
  catch_up_cmd->add_option("--fill-clients", catch_up.fill_clients, "Appenders filling the log")
      ->check(CLI::Range(1, 1000));
  catch_up_cmd->add_option("--fill-batch", catch_up.fill_batch, "Events per filling append")
      ->check(CLI::Range(1, 1000));
  catch_up_cmd->add_flag("--fill-only", catch_up.fill_only,
                         "Only append what the log lacks of --events; read nothing");
  ReadOptions read;
  CLI::App* read_cmd = app.add_subcommand(
      "read", "One client pages through history: the last --events of $all, or one stream's");
  read_cmd
      ->add_option("--target", read.target,
                   "all: $all (the log must hold --events); stream: stream read-bench "
                   "(appended to first up to --events)")
      ->check(CLI::IsMember({"all", "stream"}));
  read_cmd->add_option("--events", read.events, "Events to read")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  read_cmd->add_option("--page", read.page, "max_count of each ReadAll or ReadStream call")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  read_cmd
      ->add_option("--events-per-message", read.events_per_message,
                   "max_events_per_message (-1: the client's default, 500)")
      ->check(CLI::Range(-1, 1000));
  read_cmd->add_flag("--fill-only", read.fill_only,
                     "--target stream: only append what the stream lacks; read nothing");
  GroupOptions group;
  CLI::App* group_cmd = app.add_subcommand(
      "group", "A consumer group on $all: 4 consumers ack a backlog, then live events");
  group_cmd->add_option("--strategy", group.strategy, "The group's strategy")
      ->check(CLI::IsMember({"round-robin", "per-stream"}));
  group_cmd->add_option("--events", group.events, "Backlog events")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  group_cmd->add_option("--streams", group.streams,
                        "Streams the backlog and the live events are spread over")
      ->check(CLI::Range(1, 1000000));
  group_cmd->add_option("--after-position", group.after_position,
                        "Use the --events events after this position as the backlog "
                        "(-1: append a fresh one first)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 62));
  group_cmd->add_option("--consumers", group.consumers, "Consumers, each on its own channel")
      ->check(CLI::Range(1, 1000));
  group_cmd->add_option("--client", group.client,
                        "worker: logbook::Worker; raw: Consume streams acking on arrival")
      ->check(CLI::IsMember({"worker", "raw"}));
  group_cmd->add_option("--max-in-flight", group.max_in_flight,
                        "The group's max_in_flight (per consumer)")
      ->check(CLI::Range(1, 10000));
  group_cmd->add_option("--ack-batch", group.ack_batch, "Worker: most ids per ack message")
      ->check(CLI::Range(1, 10000));
  group_cmd->add_option("--fill-clients", group.fill_clients, "Appenders of the backlog")
      ->check(CLI::Range(1, 1000));
  group_cmd->add_option("--fill-batch", group.fill_batch,
                        "Events per backlog append (one stream each, the streams in turn)")
      ->check(CLI::Range(1, 1000));
  group_cmd->add_option("--rate", group.rate, "Live appends per second (one event each)")
      ->check(CLI::Range(1, 1000000));
  group_cmd->add_option("--seconds", group.seconds, "Live: measured seconds")
      ->check(CLI::Range(1, 3600));
  group_cmd->add_option("--warmup", group.warmup_seconds, "Live: unmeasured seconds first")
      ->check(CLI::Range(0, 3600));
  group_cmd->add_option("--appenders", group.appenders, "Live: appending threads")
      ->check(CLI::Range(1, 1000));
  group_cmd->add_option("--timeout", group.timeout_seconds, "Seconds the backlog may take")
      ->check(CLI::Range(1, 86400));
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  if (!tls_ca.empty() || !tls_cert.empty() || !tls_key.empty()) {
    auto tls = logbook::LoadClientTls(tls_ca, tls_cert, tls_key);
    if (!tls.ok()) {
      std::cerr << "logbook-bench: " << tls.status().message() << "\n";
      return 2;
    }
    Tls() = *std::move(tls);
  }

  nlohmann::json result;
  if (live_cmd->parsed()) result = LiveLatency(address, live);
  for (auto& c : appends) {
    if (c->cmd->parsed()) {
      result = Appends(address, c->options);
      if (std::string(c->cmd->get_name()) != "append") result["scenario"] = c->cmd->get_name();
    }
  }
  if (catch_up_cmd->parsed()) result = CatchUp(address, catch_up);
  if (read_cmd->parsed()) result = Read(address, read);
  if (group_cmd->parsed()) result = Group(address, group);
  std::printf("%s\n", result.dump(2).c_str());
  if (!json_out.empty()) std::ofstream(json_out) << result.dump(2) << "\n";
  return result.value("failures", 0) == 0 ? 0 : 1;
}
