// logbook-bench: drives a running logbookd over gRPC and reports what it
// measured, as JSON. Scenarios:
//   append        closed-loop appends: N clients, each on its own stream (or
//                 sharing a few streams, retrying on ABORTED), B events per
//                 append with an exact expected version; events/s, append
//                 latency p50/p99 and the conflict rate
//   catch-up      one subscriber reads $all from the start until caught_up
//   live-latency  append-to-delivery latency of live subscriptions at a fixed
//                 append rate (default: 1,000 appends/s, 100 subscribers of
//                 which 10 on $all and 90 on 9 categories)
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

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
      const int64_t now = NowNanos();
      const std::string& data = response_.event().data();
      // Data is {"t":<nanos>,...}; parse the number without a JSON parser.
      const int64_t sent = std::atoll(data.c_str() + 5);
      if (sent > 0 && recording_.load()) {
        absl::MutexLock lock(&mu_);
        latencies_us_.push_back((now - sent) / 1000.0);
      }
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
};

nlohmann::json LiveLatency(const std::string& address, const LiveLatencyOptions& o) {
  logbook::ClientOptions client_options;
  client_options.address = address;
  logbook::Client client(client_options);
  const std::string run = logbook::NewEventId().substr(0, 8);  // Fresh categories per run.
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

nlohmann::json Appends(const std::string& address, const AppendOptions& o) {
  logbook::ClientOptions client_options;
  client_options.address = address;
  logbook::Client client(client_options);
  const std::string run = logbook::NewEventId().substr(0, 8);
  std::atomic<int64_t> events{0}, conflicts{0}, failed{0};
  absl::Mutex mu;
  std::vector<double> latencies_us;
  const auto end = Clock::now() + std::chrono::seconds(o.seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      const int streams = o.streams > 0 ? o.streams : o.clients;
      const std::string stream = "bench" + run + "-" + std::to_string(c % streams);
      std::vector<double> mine;
      int64_t version = -1;  // Unknown until read.
      while (Clock::now() < end) {
        std::vector<v1::EventData> batch(o.batch);
        for (auto& e : batch) {
          e.set_type("Tick");
          e.set_data("{\"pad\":\"" + std::string(o.payload, 'x') + "\"}");
        }
        const v1::ExpectedVersion expected =
            version < 0 ? (o.streams > 0 ? logbook::expect::Any() : logbook::expect::NoStream())
                        : logbook::expect::Exact(version);
        const int64_t sent = NowNanos();
        auto result = client.Append(stream, expected, std::move(batch));
        if (result.ok()) {
          mine.push_back((NowNanos() - sent) / 1000.0);
          events += o.batch;
          version = static_cast<int64_t>(result->last_version());
        } else if (absl::IsAborted(result.status())) {
          ++conflicts;
          auto info = client.GetStream(stream);  // Re-read, then retry.
          version = info.ok() ? static_cast<int64_t>(info->version()) : -1;
        } else {
          ++failed;
        }
      }
      absl::MutexLock lock(&mu);
      latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
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
          {"failed_appends", failed.load()}};
}

nlohmann::json CatchUp(const std::string& address) {
  logbook::ClientOptions client_options;
  client_options.address = address;
  logbook::Client client(client_options);
  v1::SubscribeRequest request;
  request.mutable_all();
  int64_t events = 0;
  uint64_t caught_up_at = 0;
  const auto start = Clock::now();
  auto subscription = client.Subscribe(request, [&](const v1::SubscribeResponse& r) {
    if (r.has_event()) ++events;
    if (r.has_caught_up()) {
      caught_up_at = r.caught_up().global_position();
      return false;
    }
    return true;
  });
  const absl::Status status = subscription->Wait();
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  return {{"scenario", "catch-up"},
          {"events", events},
          {"caught_up_at", caught_up_at},
          {"seconds", seconds},
          {"events_per_s", events / seconds},
          {"failed_appends", status.ok() ? 0 : 1}};
}

}  // namespace

int main(int argc, char** argv) {
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
  AppendOptions append;
  CLI::App* append_cmd = app.add_subcommand(
      "append", "Closed-loop appends with exact expected versions (append-single/-batch/-contended)");
  append_cmd->add_option("--clients", append.clients, "Concurrent clients")
      ->check(CLI::Range(1, 10000));
  append_cmd->add_option("--batch", append.batch, "Events per append")->check(CLI::Range(1, 1000));
  append_cmd->add_option("--streams", append.streams,
                         "Streams shared by all clients, retrying on ABORTED (0: one each)");
  append_cmd->add_option("--seconds", append.seconds, "Duration")->check(CLI::Range(1, 3600));
  append_cmd->add_option("--payload", append.payload, "Padding bytes per event");
  CLI::App* catch_up_cmd =
      app.add_subcommand("catch-up", "One subscriber reads $all from the start until caught_up");
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);

  nlohmann::json result;
  if (live_cmd->parsed()) result = LiveLatency(address, live);
  if (append_cmd->parsed()) result = Appends(address, append);
  if (catch_up_cmd->parsed()) result = CatchUp(address);
  std::printf("%s\n", result.dump(2).c_str());
  if (!json_out.empty()) std::ofstream(json_out) << result.dump(2) << "\n";
  return result.value("failed_appends", 0) == 0 ? 0 : 1;
}
