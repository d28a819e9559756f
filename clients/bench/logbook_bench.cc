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
// Exit code 1 when appends failed or a subscriber got the wrong events.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "logbook/client/client.h"
#include "nlohmann/json.hpp"

namespace {

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
  logbook::ClientOptions client_options;
  client_options.address = address;
  logbook::Client client(client_options);
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
  std::vector<std::thread> appenders;
  for (int t = 0; t < o.appenders; ++t) {
    appenders.emplace_back([&, t] {
      const auto interval = std::chrono::nanoseconds(1'000'000'000LL * o.appenders / o.rate);
      auto next = start + interval * t / o.appenders;
      for (int64_t i = t; Clock::now() < end; i += o.appenders) {
        std::this_thread::sleep_until(next);
        next += interval;
        v1::EventData event;
        event.set_type("Tick");
        event.set_data("{\"t\":" + std::to_string(NowNanos()) + ",\"pad\":\"" +
                       std::string(150, 'x') + "\"}");
        const std::string stream = category(i % o.categories) + "-" + std::to_string(i % 100);
        const int64_t sent = NowNanos();
        if (client.Append(stream, logbook::expect::Any(), {event}).ok()) {
          ++appended;
          if (recording.load()) {
            absl::MutexLock lock(&append_mu);
            append_us.push_back((NowNanos() - sent) / 1000.0);
          }
        } else {
          ++failed;
        }
      }
    });
  }
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
  logbook::ClientOptions client_options;
  client_options.address = address;
  logbook::Client client(client_options);
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
absl::StatusOr<uint64_t> Head(logbook::Client& client) {
  v1::ReadAllRequest request;
  request.set_direction(v1::BACKWARD);
  request.set_max_count(1);
  auto last = client.ReadAll(request);
  if (!last.ok()) return last.status();
  return last->empty() ? 0 : last->front().global_position();
}

nlohmann::json CatchUp(const std::string& address, const CatchUpOptions& o) {
  logbook::ClientOptions client_options;
  client_options.address = address;
  client_options.call_timeout = absl::Minutes(10);
  logbook::Client client(client_options);
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
  bool in_order = true;
  auto take = [&](const v1::RecordedEvent& e) {
    in_order = in_order && e.global_position() == next;
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
  // Exact: after+1 .. head, each once, in order, then caught_up at head.
  const bool exact = status.ok() && in_order && caught_up_at == *head &&
                     events == *head - after;
  if (!exact) {
    std::fprintf(stderr,
                 "catch-up: expected positions %llu..%llu once each, got %llu events (in order: "
                 "%d), caught_up at %llu, status %s\n",
                 static_cast<unsigned long long>(after + 1),
                 static_cast<unsigned long long>(*head), static_cast<unsigned long long>(events),
                 in_order, static_cast<unsigned long long>(caught_up_at),
                 status.ToString().c_str());
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

}  // namespace

int main(int argc, char** argv) {
  // As in logbookd: no Mutex deadlock detection (on in Debian's Abseil).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"logbook-bench: measures a running logbookd over gRPC"};
  app.option_defaults()->always_capture_default();
  std::string address = "127.0.0.1:50051", json_out;
  app.add_option("--address", address, "logbookd host:port")->envname("LOGBOOK_ADDRESS");
  app.add_option("--json", json_out, "Also write the results to this JSON file");

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
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);

  nlohmann::json result;
  if (live_cmd->parsed()) result = LiveLatency(address, live);
  for (auto& c : appends) {
    if (c->cmd->parsed()) {
      result = Appends(address, c->options);
      if (std::string(c->cmd->get_name()) != "append") result["scenario"] = c->cmd->get_name();
    }
  }
  if (catch_up_cmd->parsed()) result = CatchUp(address, catch_up);
  std::printf("%s\n", result.dump(2).c_str());
  if (!json_out.empty()) std::ofstream(json_out) << result.dump(2) << "\n";
  return result.value("failures", 0) == 0 ? 0 : 1;
}
