// The C++ client's driver of the conformance scenario (tests/conformance/README.md):
//
//   conformance_cpp_driver SCENARIO ADDRESS PREFIX
//
// Runs the steps of SCENARIO (scenario.json) in order against logbookd at
// ADDRESS with the public API of logbook/client (Client, Subscribe, Worker),
// and prints one JSON line per step with what it observed. Stream, category
// and group names get PREFIX in front; positions are printed relative to the
// run's first one. At subscribe_restart it prints the "await": "restart" line
// and reads one line ("restarted") from stdin before it goes on. Exits 0 once
// every step ran, whatever the steps observed: the runner compares the lines
// with expected.jsonl.
//
// Single-threaded except where the client calls back on threads of its own
// (the subscription's handler, the worker's Run()); what those threads fill
// in is guarded by a mutex of the step.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "logbook/client/client.h"
#include "logbook/client/worker.h"
#include "nlohmann/json.hpp"

namespace {

using nlohmann::json;

// How long a step waits for what it is waiting for before it prints what it
// got, with "timed_out": true.
constexpr absl::Duration kWait = absl::Seconds(30);

void Emit(const json& line) { std::cout << line.dump() << std::endl; }

class Driver {
 public:
  Driver(logbook::Client& client, std::string prefix)
      : client_(client), prefix_(std::move(prefix)) {}

  // One step's line (without "step"), or nullopt for an unknown op.
  std::optional<json> Run(const json& step) {
    const std::string op = step.at("op").get<std::string>();
    if (op == "append") return Append(step);
    if (op == "get_stream") return GetStream(step);
    if (op == "read_stream") return ReadStream(step);
    if (op == "read_all") return ReadAll(step);
    if (op == "subscribe_restart") return SubscribeRestart(step);
    if (op == "group_worker") return GroupWorker(step);
    return std::nullopt;
  }

 private:
  // --- Names, ids and positions, as README.md "Normalization" says.

  std::string Stream(const std::string& name) const { return prefix_ + name; }

  std::string NameOf(const std::string& stream_id) const {
    if (stream_id.rfind(prefix_, 0) == 0) return stream_id.substr(prefix_.size());
    return "?" + stream_id;
  }

  std::string EventId(const std::string& name) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    std::string id = logbook::NewEventId();
    ids_[name] = id;
    names_[id] = name;
    return id;
  }

  std::string IdName(const std::string& event_id) const {
    static const std::regex kCanonicalUuid(
        "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    if (auto it = names_.find(event_id); it != names_.end()) return it->second;
    if (std::regex_match(event_id, kCanonicalUuid)) return std::string("uuid-v") + event_id[14];
    return event_id;
  }

  int64_t Position(uint64_t position) const {
    // No append succeeded yet: a value the expected file never has.
    if (!base_) return -static_cast<int64_t>(position);
    return static_cast<int64_t>(position) - static_cast<int64_t>(*base_) + 1;
  }

  json Event(const logbook::v1::RecordedEvent& e) const {
    return {{"stream", NameOf(e.stream_id())},
            {"version", e.stream_version()},
            {"position", Position(e.global_position())},
            {"type", e.type()},
            {"id", IdName(e.event_id())},
            {"data", json::parse(e.data(), nullptr, /*allow_exceptions=*/false)}};
  }

  json Events(const std::vector<logbook::v1::RecordedEvent>& events) const {
    json out = json::array();
    for (const auto& e : events) out.push_back(Event(e));
    return out;
  }

  static json Error(const absl::Status& status) {
    std::optional<uint64_t> actual = logbook::ActualVersion(status);
    return {{"code", absl::StatusCodeToString(status.code())},
            {"actual_version", actual ? json(*actual) : json(nullptr)}};
  }

  // --- The ops.

  json Append(const json& spec) {
    std::vector<logbook::v1::EventData> events;
    for (const json& e : spec.at("events")) {
      logbook::v1::EventData data;
      // Without a name, the id is left for the client to make.
      if (e.contains("id")) data.set_event_id(EventId(e.at("id").get<std::string>()));
      data.set_type(e.at("type").get<std::string>());
      data.set_data(e.at("data").dump());
      events.push_back(std::move(data));
    }
    const json& expected = spec.at("expected");
    logbook::v1::ExpectedVersion version;
    if (expected.is_number_unsigned()) {
      version = logbook::expect::Exact(expected.get<uint64_t>());
    } else if (expected == "no_stream") {
      version = logbook::expect::NoStream();
    } else if (expected == "stream_exists") {
      version = logbook::expect::StreamExists();
    } else {
      version = logbook::expect::Any();
    }
    auto r =
        client_.Append(Stream(spec.at("stream").get<std::string>()), version, std::move(events));
    if (!r.ok()) return {{"error", Error(r.status())}};
    if (!base_) base_ = r->first_position();
    json ids = json::array();
    for (const std::string& id : r->event_ids()) ids.push_back(IdName(id));
    return {{"result",
             {{"first_version", r->first_version()},
              {"last_version", r->last_version()},
              {"first_position", Position(r->first_position())},
              {"last_position", Position(r->last_position())},
              {"event_ids", ids}}}};
  }

  json GetStream(const json& step) {
    auto info = client_.GetStream(Stream(step.at("stream").get<std::string>()));
    if (!info.ok()) return {{"error", Error(info.status())}};
    return {{"stream",
             {{"version", info->version()},
              {"last_position", Position(info->last_position())},
              {"state", logbook::v1::StreamState_Name(info->state())}}}};
  }

  // The client reads one range per call (at most max_count events): with a
  // page_size, the driver pages as a C++ caller must, moving from_version
  // past each full page.
  json ReadStream(const json& step) {
    logbook::v1::ReadStreamRequest request;
    request.set_stream_id(Stream(step.at("stream").get<std::string>()));
    const bool backward = step.at("direction") == "backward";
    request.set_direction(backward ? logbook::v1::BACKWARD : logbook::v1::FORWARD);
    if (step.contains("from_version")) {
      request.set_from_version(step.at("from_version").get<uint64_t>());
    }
    const uint64_t page_size = step.value("page_size", uint64_t{0});
    request.set_max_count(page_size);
    std::vector<logbook::v1::RecordedEvent> events;
    for (;;) {
      auto page = client_.ReadStream(request);
      if (!page.ok()) return {{"error", Error(page.status())}};
      events.insert(events.end(), page->begin(), page->end());
      if (page_size == 0 || page->size() < page_size) break;
      const uint64_t last = page->back().stream_version();
      if (backward && last == 0) break;
      request.set_from_version(backward ? last - 1 : last + 1);
    }
    return {{"events", Events(events)}};
  }

  json ReadAll(const json& step) {
    logbook::v1::ReadAllRequest request;
    request.mutable_filter()->set_category(Stream(step.at("category").get<std::string>()));
    const bool backward = step.at("direction") == "backward";
    request.set_direction(backward ? logbook::v1::BACKWARD : logbook::v1::FORWARD);
    const uint64_t page_size = step.value("page_size", uint64_t{0});
    request.set_max_count(page_size);
    std::vector<logbook::v1::RecordedEvent> events;
    for (;;) {
      auto page = client_.ReadAll(request);
      if (!page.ok()) return {{"error", Error(page.status())}};
      events.insert(events.end(), page->begin(), page->end());
      if (page_size == 0 || page->size() < page_size) break;
      const uint64_t last = page->back().global_position();
      if (backward && last <= 1) break;
      request.set_from_position(backward ? last - 1 : last + 1);
    }
    return {{"events", Events(events)}};
  }

  json SubscribeRestart(const json& step) {
    struct Received {
      absl::Mutex mu;
      std::vector<logbook::v1::RecordedEvent> events ABSL_GUARDED_BY(mu);
    } received;
    logbook::v1::SubscribeRequest request;
    request.set_stream_id(Stream(step.at("stream").get<std::string>()));
    request.mutable_from_beginning();
    auto subscription =
        client_.Subscribe(request, [&received](const logbook::v1::SubscribeResponse& response) {
          if (response.has_event()) {
            absl::MutexLock lock(&received.mu);
            received.events.push_back(response.event());
          }
          return true;
        });
    const auto wait_for =
        [&received](std::function<bool(const std::vector<logbook::v1::RecordedEvent>&)> done) {
          absl::MutexLock lock(&received.mu);
          const auto cond = [&] {
            received.mu.AssertHeld();
            return done(received.events);
          };
          return received.mu.AwaitWithTimeout(absl::Condition(&cond), kWait);
        };
    const auto snapshot = [&received] {
      absl::MutexLock lock(&received.mu);
      return received.events;
    };

    json first = {{"step", step.at("step")}, {"await", "restart"}};
    const size_t before = step.at("before_restart").get<size_t>();
    if (!wait_for([before](const auto& events) { return events.size() >= before; })) {
      first["timed_out"] = true;
    }
    first["events"] = Events(snapshot());
    Emit(first);
    std::string line;
    if (!std::getline(std::cin, line) || line != "restarted") {
      std::cerr << "subscribe_restart: wanted 'restarted' on stdin, got '" << line << "'\n";
      std::exit(1);
    }

    json out = {{"append", Append(step.at("after_restart"))}};
    const uint64_t until = step.at("until_version").get<uint64_t>();
    if (!wait_for([until](const auto& events) {
          for (const auto& e : events) {
            if (e.stream_version() == until) return true;
          }
          return false;
        })) {
      out["timed_out"] = true;
    }
    subscription->Stop();
    const absl::Status ended = subscription->Wait();
    out["events"] = Events(snapshot());
    if (!absl::IsCancelled(ended)) out["error"] = Error(ended);
    return out;
  }

  json GroupWorker(const json& step) {
    const std::string group = Stream(step.at("group").get<std::string>());
    logbook::v1::CreateConsumerGroupRequest create;
    create.set_group(group);
    create.mutable_target()->set_category(Stream(step.at("category").get<std::string>()));
    create.mutable_settings()->set_strategy(logbook::v1::PER_STREAM);
    if (auto created = client_.CreateConsumerGroup(create); !created.ok()) {
      return {{"error", Error(created.status())}};
    }
    std::set<std::tuple<std::string, uint64_t, uint32_t>> fails;
    for (const json& f : step.at("fail")) {
      fails.emplace(f.at("stream").get<std::string>(), f.at("version").get<uint64_t>(),
                    f.at("attempt").get<uint32_t>());
    }
    const size_t acks = step.at("acks").get<size_t>();

    struct Handled {
      absl::Mutex mu;
      json streams ABSL_GUARDED_BY(mu) = json::object();
      size_t acks ABSL_GUARDED_BY(mu) = 0;
    } handled;
    logbook::WorkerOptions options;
    options.group = group;
    options.consumer = step.at("consumer").get<std::string>();
    logbook::Worker worker(client_, options, [&](const logbook::v1::Delivery& d) {
      const std::string name = NameOf(d.event().stream_id());
      const bool failing = fails.count({name, d.event().stream_version(), d.attempt()}) > 0;
      absl::MutexLock lock(&handled.mu);
      handled.streams[name].push_back(json::object({{"version", d.event().stream_version()},
                                                    {"attempt", d.attempt()},
                                                    {"position", Position(d.delivery_id())},
                                                    {"outcome", failing ? "fail" : "ack"}}));
      if (failing) return absl::UnavailableError("conformance: a planned failure");
      ++handled.acks;
      return absl::OkStatus();
    });
    absl::Status run_status;
    std::thread runner([&] { run_status = worker.Run(); });

    json out = json::object();
    {
      absl::MutexLock lock(&handled.mu);
      const auto all_acked = [&] {
        handled.mu.AssertHeld();
        return handled.acks >= acks;
      };
      if (!handled.mu.AwaitWithTimeout(absl::Condition(&all_acked), kWait)) {
        out["timed_out"] = true;
      }
    }
    // The counts once the server has taken every ack (the worker still
    // runs, so that nothing it has yet to send is lost).
    const absl::Time deadline = absl::Now() + kWait;
    absl::StatusOr<logbook::v1::ConsumerGroupInfo> info;
    for (;;) {
      info = client_.GetConsumerGroup(group);
      if (info.ok() && info->acked() == acks && info->in_flight() == 0 && info->lag_events() == 0) {
        break;
      }
      if (absl::Now() > deadline) {
        out["timed_out"] = true;
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    worker.Stop();
    runner.join();
    {
      absl::MutexLock lock(&handled.mu);
      out["handled"] = handled.streams;
    }
    if (!info.ok()) {
      out["error"] = Error(info.status());
    } else {
      out["group"] = {{"delivered", info->delivered()},
                      {"acked", info->acked()},
                      {"parked", info->parked()},
                      {"in_flight", info->in_flight()},
                      {"lag_events", info->lag_events()},
                      {"checkpoint_position", Position(info->checkpoint_position())}};
    }
    if (!run_status.ok()) out["error"] = Error(run_status);
    return out;
  }

  logbook::Client& client_;
  const std::string prefix_;
  std::map<std::string, std::string> ids_;    // The scenario's id names -> the ids made for them.
  std::map<std::string, std::string> names_;  // And back.
  std::optional<uint64_t> base_;              // The run's first position.
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: conformance_cpp_driver SCENARIO ADDRESS PREFIX\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  const json scenario = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (scenario.is_discarded()) {
    std::cerr << argv[1] << ": not JSON\n";
    return 2;
  }
  logbook::ClientOptions options;
  options.address = argv[2];
  options.call_timeout = absl::Seconds(10);
  logbook::Client client(options);
  Driver driver(client, argv[3]);
  for (const json& step : scenario.at("steps")) {
    std::optional<json> line = driver.Run(step);
    if (!line) {
      std::cerr << "unknown op '" << step.at("op").get<std::string>() << "'\n";
      return 2;
    }
    (*line)["step"] = step.at("step");
    Emit(*line);
  }
  return 0;
}
