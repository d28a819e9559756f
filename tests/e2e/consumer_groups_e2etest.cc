// Consumer groups end to end, against the real logbookd: competing
// consumers on their own connections share every event once, in order per
// stream; a consumer that goes away, a poison event and a dead instance
// lose nothing and block nothing; bad input is refused with its field.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "events.h"
#include "logbook/client/worker.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "logbookd_process.h"
#include "nlohmann/json.hpp"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::Event;
using testing::Logbookd;

// What a test consumer does with a delivery.
enum class Reaction { kAck, kRetry, kPark, kHold, kCrash };

// One consumer on its own connection, on a thread: joins, then for each
// delivery asks `react` and acks, nacks, holds it (never settles) or
// "crashes" (ends the call without settling anything). Records every
// delivery. Stops on Stop() or when the call ends.
class Consumer {
 public:
  using React = std::function<Reaction(const v1::Delivery&)>;

  Consumer(std::shared_ptr<grpc::Channel> channel, std::string group, std::string name,
           React react, uint32_t max_in_flight = 0)
      : stub_(v1::EventStore::NewStub(std::move(channel))),
        group_(std::move(group)),
        name_(std::move(name)),
        react_(std::move(react)),
        max_in_flight_(max_in_flight),
        thread_([this] { Run(); }) {}
  ~Consumer() { Stop(); }

  void Stop() {
    ctx_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }

  std::vector<v1::Delivery> deliveries() {
    absl::MutexLock lock(&mu_);
    return deliveries_;
  }
  // The assignments received, each with the number of deliveries before it.
  std::vector<std::pair<v1::ConsumerAssignment, size_t>> assignments() {
    absl::MutexLock lock(&mu_);
    return assignments_;
  }
  bool WaitAssignments(size_t n, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return assignments_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), within);
  }
  grpc::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  bool WaitDeliveries(size_t n, absl::Duration within) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return deliveries_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), within);
  }
  bool WaitEnded(absl::Duration within) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&ended_), within);
  }

 private:
  void Run() {
    auto stream = stub_->Consume(&ctx_);
    v1::ConsumeRequest join;
    join.mutable_join()->set_group(group_);
    join.mutable_join()->set_consumer(name_);
    join.mutable_join()->set_max_in_flight(max_in_flight_);
    stream->Write(join);
    v1::ConsumeResponse m;
    while (stream->Read(&m)) {
      if (m.has_assignment()) {
        absl::MutexLock lock(&mu_);
        assignments_.emplace_back(m.assignment(), deliveries_.size());
      }
      if (!m.has_delivery()) continue;
      const Reaction r = react_(m.delivery());
      {
        absl::MutexLock lock(&mu_);
        deliveries_.push_back(m.delivery());
      }
      v1::ConsumeRequest settle;
      switch (r) {
        case Reaction::kAck:
          settle.mutable_ack()->add_delivery_ids(m.delivery().delivery_id());
          break;
        case Reaction::kRetry:
        case Reaction::kPark:
          settle.mutable_nack()->add_delivery_ids(m.delivery().delivery_id());
          settle.mutable_nack()->set_action(r == Reaction::kPark ? v1::PARK : v1::RETRY);
          settle.mutable_nack()->set_reason("test says no");
          break;
        case Reaction::kHold:
          continue;
        case Reaction::kCrash:
          ctx_.TryCancel();
          continue;
      }
      if (!stream->Write(settle)) break;
    }
    grpc::Status s = stream->Finish();
    absl::MutexLock lock(&mu_);
    status_ = s;
    ended_ = true;
  }

  std::unique_ptr<v1::EventStore::Stub> stub_;
  const std::string group_, name_;
  const React react_;
  const uint32_t max_in_flight_;
  grpc::ClientContext ctx_;
  absl::Mutex mu_;
  std::vector<v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<v1::ConsumerAssignment, size_t>> assignments_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts after the members above.
};

class ConsumerGroupsE2eTest : public testing::ServerTest {
 protected:
  grpc::Status TryCreate(const v1::CreateConsumerGroupRequest& request,
                         v1::ConsumerGroupInfo* info = nullptr) {
    grpc::ClientContext ctx;
    v1::ConsumerGroupInfo ignored;
    return stub_->CreateConsumerGroup(&ctx, request, info ? info : &ignored);
  }

  void Create(const std::string& group, const std::string& category,
              v1::ConsumerGroupStrategy strategy, uint32_t ack_timeout_ms = 30000,
              uint32_t max_deliveries = 10) {
    v1::CreateConsumerGroupRequest r;
    r.set_group(group);
    r.mutable_target()->set_category(category);
    r.mutable_settings()->set_strategy(strategy);
    r.mutable_settings()->set_ack_timeout_ms(ack_timeout_ms);
    r.mutable_settings()->set_max_deliveries(max_deliveries);
    r.mutable_settings()->set_retry_backoff_ms(0);
    const grpc::Status s = TryCreate(r);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  v1::ConsumerGroupInfo Info(const std::string& group, v1::EventStore::Stub* stub = nullptr) {
    grpc::ClientContext ctx;
    v1::GetConsumerGroupRequest r;
    r.set_group(group);
    v1::ConsumerGroupInfo info;
    const grpc::Status s = (stub ? stub : stub_.get())->GetConsumerGroup(&ctx, r, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }

  // Waits until the group acked `acked` events and its checkpoint is the head.
  bool WaitSettled(const std::string& group, uint64_t acked, absl::Duration within) {
    const absl::Time until = absl::Now() + within;
    while (absl::Now() < until) {
      const v1::ConsumerGroupInfo info = Info(group);
      if (info.acked() == acked && info.checkpoint_position() == info.head_position()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // The first message a Consume call answers `requests` with: its status.
  grpc::Status ConsumeStatus(const std::vector<v1::ConsumeRequest>& requests) {
    grpc::ClientContext ctx;
    auto stream = stub_->Consume(&ctx);
    for (const auto& r : requests) stream->Write(r);
    stream->WritesDone();
    v1::ConsumeResponse m;
    while (stream->Read(&m)) {
    }
    return stream->Finish();
  }
};

// The resident set of process `pid` (VmRSS), in KiB.
int64_t RssKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::stoll(line.substr(6));
  }
  ADD_FAILURE() << "no VmRSS for " << pid;
  return 0;
}

v1::ConsumeRequest Join(const std::string& group, const std::string& consumer) {
  v1::ConsumeRequest r;
  r.mutable_join()->set_group(group);
  r.mutable_join()->set_consumer(consumer);
  return r;
}

v1::ConsumeRequest Ack(uint64_t id) {
  v1::ConsumeRequest r;
  r.mutable_ack()->add_delivery_ids(id);
  return r;
}

// Three consumers, PER_STREAM, 200 streams, 20,000 events appended while
// they run: every event acked exactly once, each stream's events handled
// in version order and never two of a stream at once.
TEST_F(ConsumerGroupsE2eTest, ThreeConsumersHandleEveryEventOnceInOrderPerStream) {
  Create("ledger", "acct", v1::PER_STREAM);
  absl::Mutex mu;
  std::map<std::string, std::string> holder;          // Stream -> consumer handling it.
  std::map<std::string, int64_t> last_version;        // Stream -> last version handled.
  std::map<std::string, int> handled;                 // Event id -> times acked.
  std::vector<std::string> violations;
  auto consumer = [&](const std::string& name) {
    return [&, name](const v1::Delivery& d) {
      const v1::RecordedEvent& e = d.event();
      {
        absl::MutexLock lock(&mu);
        if (auto it = holder.find(e.stream_id()); it != holder.end()) {
          violations.push_back(absl::StrCat(e.stream_id(), " in flight to ", it->second,
                                            " and ", name));
        }
        holder[e.stream_id()] = name;
        auto last = last_version.find(e.stream_id());
        const int64_t expected = last == last_version.end() ? 0 : last->second + 1;
        if (static_cast<int64_t>(e.stream_version()) != expected) {
          violations.push_back(absl::StrCat(e.stream_id(), "@", e.stream_version(),
                                            " where ", expected, " was due"));
        }
        last_version[e.stream_id()] = e.stream_version();
        ++handled[e.event_id()];
        holder.erase(e.stream_id());  // Settled next: the stream is free again.
      }
      return Reaction::kAck;
    };
  };
  std::vector<std::unique_ptr<Consumer>> consumers;
  for (const char* name : {"w1", "w2", "w3"}) {
    consumers.push_back(std::make_unique<Consumer>(server_->NewChannel(), "ledger", name,
                                                   consumer(name)));
  }
  // 200 streams x 100 events, 10 per append, the streams interleaved.
  for (int round = 0; round < 10; ++round) {
    for (int s = 0; s < 200; ++s) {
      std::vector<v1::EventData> events;
      for (int i = 0; i < 10; ++i) events.push_back(Event("Posted", "{}"));
      Append(absl::StrCat("acct-", s), events);
    }
  }
  ASSERT_TRUE(WaitSettled("ledger", 20000, absl::Minutes(3)));
  for (auto& c : consumers) c->Stop();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(violations, std::vector<std::string>());
  EXPECT_EQ(handled.size(), 20000u);
  size_t twice = 0;
  for (const auto& [id, n] : handled) twice += n != 1;
  EXPECT_EQ(twice, 0u);
  for (const auto& [stream, version] : last_version) EXPECT_EQ(version, 99) << stream;
  size_t total = 0;
  for (auto& c : consumers) {
    const size_t n = c->deliveries().size();
    EXPECT_GT(n, 0u) << "every consumer got work";
    total += n;
  }
  EXPECT_EQ(total, 20000u);
  const v1::ConsumerGroupInfo info = Info("ledger");
  EXPECT_EQ(info.delivered(), 20000u);
  EXPECT_EQ(info.in_flight(), 0u);
  EXPECT_EQ(info.lag_events(), 0u);
}

// A `logbook consume --json` process (the CLI, a logbook::Worker), its
// stdout in `out`; SIGTERM on destruction (it then sends its last acks).
class ConsumerProcess {
 public:
  ConsumerProcess(const std::string& address, const std::string& group,
                  const std::string& consumer, std::string out)
      : out_(std::move(out)) {
    std::vector<std::string> args = {"logbook", "--address", address, "consume", group,
                                     "--consumer", consumer, "--json"};
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // Never outlive a test that died.
      if (freopen(out_.c_str(), "w", stdout) == nullptr) _exit(126);
      if (freopen("/dev/null", "w", stderr) == nullptr) _exit(126);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(std::getenv("LOGBOOK_CLI"), argv.data());
      _exit(127);
    }
  }
  ~ConsumerProcess() { Stop(); }

  // SIGTERM, then its exit status.
  int Stop() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGTERM);
    waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }
  const std::string& out() const { return out_; }

 private:
  std::string out_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// Issue 18's test 1 with processes: three `logbook consume` processes of one
// PER_STREAM group, 20,000 events over 200 streams appended while they run.
// Every event is handled once, by one of them, and each stream's events in
// version order across the three (their handling times, one clock).
TEST_F(ConsumerGroupsE2eTest, ThreeConsumerProcessesHandleEveryEventOnceInOrder) {
  Create("ledger", "acct", v1::PER_STREAM);
  std::vector<std::unique_ptr<ConsumerProcess>> processes;
  for (const char* name : {"p1", "p2", "p3"}) {
    processes.push_back(std::make_unique<ConsumerProcess>(
        server_->address(), "ledger", name,
        absl::StrCat("/tmp/consumer-", getpid(), "-", name, ".jsonl")));
  }
  for (int round = 0; round < 10; ++round) {
    for (int s = 0; s < 200; ++s) {
      std::vector<v1::EventData> events;
      for (int i = 0; i < 10; ++i) events.push_back(Event("Posted", "{}"));
      Append(absl::StrCat("acct-", s), events);
    }
  }
  ASSERT_TRUE(WaitSettled("ledger", 20000, absl::Minutes(3))) << Info("ledger").DebugString();
  struct Handled {
    int64_t at_ns;
    uint64_t version;
    std::string consumer;
  };
  std::map<std::string, std::vector<Handled>> by_stream;
  std::map<std::string, int> times;  // Event id -> deliveries.
  std::map<std::string, size_t> per_process;
  for (size_t i = 0; i < processes.size(); ++i) {
    EXPECT_EQ(processes[i]->Stop(), 0) << "exit status of p" << i + 1;
    std::ifstream in(processes[i]->out());
    std::string line;
    const std::string name = absl::StrCat("p", i + 1);
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_EQ(j["action"], "ack");
      EXPECT_EQ(j["attempt"], 1);
      const nlohmann::json& e = j["event"];
      by_stream[e["stream_id"].get<std::string>()].push_back(
          {j["handled_at_ns"].get<int64_t>(), e["stream_version"].get<uint64_t>(), name});
      ++times[e["event_id"].get<std::string>()];
      ++per_process[name];
    }
    unlink(processes[i]->out().c_str());
  }
  EXPECT_EQ(times.size(), 20000u);
  size_t not_once = 0;
  for (const auto& [id, n] : times) not_once += n != 1;
  EXPECT_EQ(not_once, 0u);
  EXPECT_EQ(per_process.size(), 3u) << "every process got work";
  ASSERT_EQ(by_stream.size(), 200u);
  std::vector<std::string> out_of_order;
  for (auto& [stream, handled] : by_stream) {
    std::stable_sort(handled.begin(), handled.end(),
                     [](const Handled& a, const Handled& b) { return a.at_ns < b.at_ns; });
    for (size_t v = 0; v < handled.size(); ++v) {
      if (handled[v].version != v) {
        out_of_order.push_back(absl::StrCat(stream, ": #", v, " handled was version ",
                                            handled[v].version, " (by ", handled[v].consumer,
                                            ")"));
        break;
      }
    }
    EXPECT_EQ(handled.size(), 100u) << stream;
  }
  EXPECT_EQ(out_of_order, std::vector<std::string>());
  const v1::ConsumerGroupInfo info = Info("ledger");
  EXPECT_EQ(info.delivered(), 20000u);
  EXPECT_EQ(info.acked(), 20000u);
  EXPECT_EQ(info.in_flight(), 0u);
}

// A consumer that goes away with deliveries in flight: they go to another
// at once (counted as a delivery each), long before ack_timeout.
TEST_F(ConsumerGroupsE2eTest, WhatAConsumerHeldGoesToAnotherWhenItLeaves) {
  Create("g", "order", v1::ROUND_ROBIN, /*ack_timeout_ms=*/600000);
  for (int s = 0; s < 3; ++s) Append(absl::StrCat("order-", s), {Event("Placed", "{}")});
  auto holder = std::make_unique<Consumer>(server_->NewChannel(), "g", "holder",
                                           [](const v1::Delivery&) { return Reaction::kHold; });
  ASSERT_TRUE(holder->WaitDeliveries(3, absl::Seconds(30)));
  EXPECT_EQ(Info("g").in_flight(), 3u);
  holder->Stop();
  Consumer worker(server_->NewChannel(), "g", "worker",
                  [](const v1::Delivery&) { return Reaction::kAck; });
  ASSERT_TRUE(worker.WaitDeliveries(3, absl::Seconds(30)));
  for (const v1::Delivery& d : worker.deliveries()) EXPECT_EQ(d.attempt(), 2u);
  ASSERT_TRUE(WaitSettled("g", 3, absl::Seconds(30)));
  EXPECT_EQ(Info("g").delivered(), 6u);
}

// A poison event that makes its consumer crash every time is parked after
// exactly max_deliveries deliveries; the other streams keep flowing, and
// so does the poison event's own stream.
TEST_F(ConsumerGroupsE2eTest, APoisonEventIsParkedAfterMaxDeliveries) {
  Create("g", "order", v1::PER_STREAM, /*ack_timeout_ms=*/600000, /*max_deliveries=*/3);
  // One event at a time: a crash loses only the event it crashed on.
  Append("order-1", {Event("Poison", "{}"), Event("Placed", "{}")});
  Append("order-2", {Event("Placed", "{}")});
  absl::Mutex mu;
  int poison_deliveries = 0;
  std::set<std::string> acked;
  auto acked_both = [&]() {
    absl::MutexLock lock(&mu);
    return acked.size() == 2;
  };
  // A consumer that crashes on the poison event, started again each time.
  for (int crash = 0; crash < 10 && !acked_both(); ++crash) {
    Consumer c(server_->NewChannel(), "g", "w", [&](const v1::Delivery& d) {
      absl::MutexLock lock(&mu);
      if (d.event().type() == "Poison") {
        ++poison_deliveries;
        EXPECT_EQ(d.attempt(), static_cast<uint32_t>(poison_deliveries));
        return Reaction::kCrash;
      }
      acked.insert(absl::StrCat(d.event().stream_id(), "@", d.event().stream_version()));
      return Reaction::kAck;
    }, /*max_in_flight=*/1);
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (absl::Now() < until && !c.WaitEnded(absl::Milliseconds(50)) && !acked_both()) {
    }
  }
  absl::MutexLock lock(&mu);
  EXPECT_EQ(poison_deliveries, 3);
  EXPECT_EQ(acked, (std::set<std::string>{"order-1@1", "order-2@0"}));
  ASSERT_TRUE(WaitSettled("g", 2, absl::Seconds(30)));
  const v1::ConsumerGroupInfo info = Info("g");
  EXPECT_EQ(info.parked(), 1u);
  EXPECT_EQ(info.checkpoint_position(), 3u);
  grpc::ClientContext ctx;
  v1::ListParkedRequest list;
  list.set_group("g");
  v1::ListParkedResponse parked;
  ASSERT_TRUE(stub_->ListParked(&ctx, list, &parked).ok());
  ASSERT_EQ(parked.parked_size(), 1);
  EXPECT_EQ(parked.parked(0).delivery_id(), 1u);
  EXPECT_EQ(parked.parked(0).event_type(), "Poison");
  EXPECT_EQ(parked.parked(0).attempts(), 3u);
  EXPECT_EQ(parked.parked(0).reason(),
            "delivered 3 times (max_deliveries) without an ack; the last: its consumer went "
            "away");
  EXPECT_FALSE(parked.has_next_after());
}

// Two instances on one database, a consumer on each: when one instance
// dies, what its consumer held goes to the consumer on the other.
TEST_F(ConsumerGroupsE2eTest, ADeadInstancesWorkMovesToTheOther) {
  Create("g", "order", v1::PER_STREAM, /*ack_timeout_ms=*/1000);
  Logbookd second(testing::AsRole(dsn_, "logbook_app"),
                  {"--admin-database=" + testing::AsRole(dsn_, "logbook_redactor")});
  ASSERT_TRUE(second.WaitServing());
  Consumer doomed(second.NewChannel(), "g", "doomed",
                  [&](const v1::Delivery&) { return Reaction::kHold; });
  Consumer survivor(server_->NewChannel(), "g", "survivor",
                    [](const v1::Delivery&) { return Reaction::kAck; });
  // Both members live, and both instances know it (members are renewed
  // every second): the streams are spread, the doomed one holds its share.
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until && Info("g").members_size() < 2) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(Info("g").members_size(), 2);
  EXPECT_NE(Info("g").members(0).instance(), Info("g").members(1).instance());
  absl::SleepFor(absl::Milliseconds(1500));
  for (int s = 0; s < 20; ++s) Append(absl::StrCat("order-", s), {Event("Placed", "{}")});
  while (absl::Now() < until && doomed.deliveries().empty()) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_FALSE(doomed.deliveries().empty());
  absl::SleepFor(absl::Milliseconds(200));  // The rest of its share.
  const size_t held = doomed.deliveries().size();
  second.Kill();
  // Its member record lapses (10 s) and its leases run out (1 s): the
  // survivor gets everything, the doomed share on a second delivery.
  ASSERT_TRUE(WaitSettled("g", 20, absl::Seconds(60)));
  size_t redelivered = 0;
  for (const v1::Delivery& d : survivor.deliveries()) redelivered += d.attempt() == 2;
  EXPECT_EQ(redelivered, held);
  EXPECT_EQ(survivor.deliveries().size(), 20u);
}

// logbookd killed (SIGKILL) while workers consume, then started again on
// the same port: the workers (the client's Worker, which reconnects)
// resume, every event is acked at least once, and the checkpoint never
// moves back nor past an event no worker handled yet.
TEST_F(ConsumerGroupsE2eTest, WorkersResumeAfterLogbookdIsKilledAndNothingIsSkipped) {
  Create("g", "acct", v1::ROUND_ROBIN, /*ack_timeout_ms=*/2000);
  absl::Mutex mu;
  std::set<uint64_t> handled;  // Positions a worker handled (acked after).
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  ClientOptions options;
  options.address = server_->address();
  options.max_backoff = absl::Milliseconds(200);
  Client client(options);
  for (const char* name : {"w1", "w2"}) {
    WorkerOptions w;
    w.group = "g";
    w.consumer = name;
    workers.push_back(std::make_unique<Worker>(client, w, [&](const v1::Delivery& d) {
      absl::MutexLock lock(&mu);
      handled.insert(d.delivery_id());
      return absl::OkStatus();
    }));
    threads.emplace_back([&, worker = workers.back().get()] {
      EXPECT_TRUE(worker->Run().ok());
    });
  }
  // Watches the checkpoint: never back, never past what was not handled.
  std::atomic<bool> watching{true};
  std::vector<std::string> violations;
  std::thread watcher([&] {
    auto stub = v1::EventStore::NewStub(
        grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials()));
    uint64_t last = 0;
    while (watching) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
      v1::GetConsumerGroupRequest r;
      r.set_group("g");
      v1::ConsumerGroupInfo info;
      if (stub->GetConsumerGroup(&ctx, r, &info).ok()) {
        const uint64_t c = info.checkpoint_position();
        absl::MutexLock lock(&mu);
        if (c < last) violations.push_back(absl::StrCat("back from ", last, " to ", c));
        for (uint64_t p = last + 1; p <= c; ++p) {
          if (!handled.count(p)) violations.push_back(absl::StrCat("past unhandled ", p));
        }
        last = std::max(last, c);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  const int port = server_->port();
  for (int round = 0; round < 4; ++round) {
    for (int s = 0; s < 50; ++s) {
      Append(absl::StrCat("acct-", s), {Event("Posted", "{}"), Event("Posted", "{}")});
    }
    if (round == 1) {
      server_->Kill();
      StartServer({}, port);
    }
  }
  ASSERT_TRUE(WaitSettled("g", 400, absl::Seconds(60))) << Info("g").DebugString();
  watching = false;
  watcher.join();
  for (auto& w : workers) w->Stop();
  for (auto& t : threads) t.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(violations, std::vector<std::string>());
  EXPECT_EQ(handled.size(), 400u);
  EXPECT_EQ(*handled.begin(), 1u);
  EXPECT_EQ(*handled.rbegin(), 400u);
}

// 100,000 parked events, listed a page at a time and replayed: logbookd
// moves them in batches, its peak RSS rising by less than 50 MiB.
TEST_F(ConsumerGroupsE2eTest, ManyParkedEventsAreListedAndReplayedInBoundedMemory) {
  Create("g", "bulk", v1::ROUND_ROBIN);
  for (int batch = 0; batch < 100; ++batch) {
    std::vector<v1::EventData> events(1000, Event("Loaded", "{}"));
    Append(absl::StrCat("bulk-", batch), events);
  }
  // Set-up, as the owner: all of them parked, as a consumer parking each
  // would leave them (the replay is what is under test).
  ASSERT_EQ(testing::Exec(dsn_, "INSERT INTO logbook.consumer_group_parked (group_name, "
                                "global_position, attempts, reason) SELECT 'g', "
                                "global_position, 1, 'nacked: later' FROM logbook.event_log; "
                                "UPDATE logbook.consumer_groups SET checkpoint = 100000, "
                                "scanned_to = 100000"),
            "");
  EXPECT_EQ(Info("g").parked(), 100000u);
  // Every page: 10,000 in position order, the next one after it.
  uint64_t after = 0, listed = 0;
  for (int page = 0; page < 11; ++page) {
    grpc::ClientContext ctx;
    v1::ListParkedRequest r;
    r.set_group("g");
    r.set_after(after);
    r.set_max_count(10000);
    v1::ListParkedResponse response;
    ASSERT_TRUE(stub_->ListParked(&ctx, r, &response).ok());
    if (response.parked_size() == 0) break;
    EXPECT_EQ(response.parked(0).delivery_id(), after + 1);
    EXPECT_EQ(response.parked(0).reason(), "nacked: later");
    listed += response.parked_size();
    if (!response.has_next_after()) break;
    after = response.next_after();
  }
  EXPECT_EQ(listed, 100000u);
  // logbookd's RSS, sampled every 5 ms while it replays.
  const int64_t before = RssKib(server_->pid());
  std::atomic<bool> sampling{true};
  std::atomic<int64_t> peak{before};
  std::thread sampler([&] {
    while (sampling) {
      peak = std::max<int64_t>(peak, RssKib(server_->pid()));
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  grpc::ClientContext ctx;
  v1::ReplayParkedRequest replay;
  replay.mutable_selection()->set_group("g");
  replay.mutable_selection()->mutable_all();
  v1::ReplayParkedResponse replayed;
  const grpc::Status status = stub_->ReplayParked(&ctx, replay, &replayed);
  sampling = false;
  sampler.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(replayed.replayed(), 100000u);
  EXPECT_LT(peak - before, 50 * 1024) << "KiB more than before";
  const v1::ConsumerGroupInfo info = Info("g");
  EXPECT_EQ(info.parked(), 0u);
  EXPECT_EQ(info.lag_events(), 100000u);
  EXPECT_EQ(info.checkpoint_position(), 100000u);  // Not moved back.
}

// join.max_batch: what is ready comes in `deliveries` messages of at most
// that many, in order; acked as any other.
std::string Describe(const v1::ConsumerAssignment& a) {
  return absl::StrCat(absl::StrJoin(a.members(), ","), " -> ", a.streams_owned(), ": ",
                      absl::StrJoin(a.stream_ids(), " "));
}

// PER_STREAM consumers are told which streams they own before their first
// delivery and again when members come and go; a stream in flight stays
// with its holder until settled.
TEST_F(ConsumerGroupsE2eTest, PerStreamConsumersAreToldWhichStreamsTheyOwn) {
  Create("g", "order", v1::PER_STREAM);
  std::vector<std::string> all;
  for (int i = 1; i <= 12; ++i) {
    all.push_back(absl::StrCat("order-", absl::Dec(i, absl::kZeroPad2)));
    Append(all.back(), {Event("Placed", "{}")});
  }
  std::sort(all.begin(), all.end());
  const std::string every = absl::StrJoin(all, " ");
  Consumer c1(server_->NewChannel(), "g", "c1", [](const v1::Delivery&) { return Reaction::kHold; });
  ASSERT_TRUE(c1.WaitDeliveries(12, absl::Seconds(30)));
  ASSERT_TRUE(c1.WaitAssignments(1, absl::Seconds(30)));
  EXPECT_EQ(Describe(c1.assignments()[0].first), "c1 -> 12: " + every);
  EXPECT_EQ(c1.assignments()[0].second, 0u);  // Before any delivery.

  // c2 joins: hashing would give it some streams, but c1 holds them all.
  Consumer c2(server_->NewChannel(), "g", "c2", [](const v1::Delivery&) { return Reaction::kAck; });
  ASSERT_TRUE(c2.WaitAssignments(1, absl::Seconds(30)));
  EXPECT_EQ(Describe(c2.assignments()[0].first), "c1,c2 -> 0: ");
  ASSERT_TRUE(c1.WaitAssignments(2, absl::Seconds(30)));
  EXPECT_EQ(Describe(c1.assignments()[1].first), "c1,c2 -> 12: " + every);

  // c1 goes: what it held is c2's, and comes to it.
  c1.Stop();
  ASSERT_TRUE(c2.WaitAssignments(2, absl::Seconds(30)));
  EXPECT_EQ(Describe(c2.assignments()[1].first), "c2 -> 12: " + every);
  ASSERT_TRUE(c2.WaitDeliveries(12, absl::Seconds(30)));
  EXPECT_TRUE(WaitSettled("g", 12, absl::Seconds(30))) << Info("g").DebugString();
  EXPECT_EQ(c2.assignments().size(), 2u);
}

TEST_F(ConsumerGroupsE2eTest, DeliveriesComeInBatchesWhenTheJoinAsks) {
  Create("g", "bulk", v1::ROUND_ROBIN);
  Append("bulk-1", std::vector<v1::EventData>(25, Event("Loaded", "{}")));
  grpc::ClientContext ctx;
  auto stream = stub_->Consume(&ctx);
  v1::ConsumeRequest join = Join("g", "c1");
  join.mutable_join()->set_max_batch(10);
  ASSERT_TRUE(stream->Write(join));
  std::vector<uint64_t> ids;
  std::vector<int> sizes;
  v1::ConsumeResponse m;
  while (ids.size() < 25 && stream->Read(&m)) {
    if (m.has_joined()) continue;
    ASSERT_TRUE(m.has_deliveries()) << m.DebugString();
    sizes.push_back(m.deliveries().deliveries_size());
    v1::ConsumeRequest ack;
    for (const v1::Delivery& d : m.deliveries().deliveries()) {
      ids.push_back(d.delivery_id());
      EXPECT_EQ(d.attempt(), 1u);
      ack.mutable_ack()->add_delivery_ids(d.delivery_id());
    }
    ASSERT_TRUE(stream->Write(ack));
  }
  std::vector<uint64_t> expected(25);
  for (uint64_t i = 0; i < 25; ++i) expected[i] = i + 1;
  EXPECT_EQ(ids, expected);
  for (int n : sizes) EXPECT_LE(n, 10);
  EXPECT_GE(sizes.size(), 3u);
  EXPECT_TRUE(WaitSettled("g", 25, absl::Seconds(30))) << Info("g").DebugString();
  stream->WritesDone();
  while (stream->Read(&m)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ConsumerGroupsE2eTest, BadInputIsRefusedWithItsField) {
  Create("g", "order", v1::PER_STREAM);
  v1::CreateConsumerGroupRequest bad;
  bad.set_group("bad name!");
  bad.mutable_target()->mutable_all();
  grpc::Status s = TryCreate(bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "group: only letters, digits, '.', '_' and '-' are allowed");
  bad.set_group("g2");
  bad.clear_target();
  s = TryCreate(bad);
  EXPECT_EQ(s.error_message(), "target: set one of stream_id, category or all");
  bad.mutable_target()->mutable_all();
  bad.mutable_settings()->set_max_in_flight(0);
  s = TryCreate(bad);
  EXPECT_EQ(s.error_message(), "settings.max_in_flight: 0 is outside 1..10000");
  bad.clear_settings();
  bad.set_group("g");
  s = TryCreate(bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(s.error_message(), "consumer group 'g' already exists");

  s = ConsumeStatus({Ack(1)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "join: the first message of Consume must be a join");
  s = ConsumeStatus({Join("nope", "c")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "consumer group 'nope' does not exist");
  // Each call its own consumer name: a call's name is free again only
  // once the server has seen it end.
  s = ConsumeStatus({Join("g", "c1"), Join("g", "c1")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "join: this call already joined group 'g' as 'c1'");
  s = ConsumeStatus({Join("g", "c2"), Ack(7)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "ack: delivery 7 is not held by consumer 'c2' (settled already, or delivered again "
            "after its ack_timeout)");
  v1::ConsumeRequest twice = Ack(7);
  twice.mutable_ack()->add_delivery_ids(7);
  s = ConsumeStatus({Join("g", "c3"), twice});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "ack.delivery_ids: 7 appears twice");
  v1::ConsumeRequest big = Join("g", "c4");
  big.mutable_join()->set_max_in_flight(101);
  s = ConsumeStatus({big});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "join.max_in_flight: 101 is more than the group's 100");
  v1::ConsumeRequest batch = Join("g", "c5");
  batch.mutable_join()->set_max_batch(1001);
  s = ConsumeStatus({batch});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "join.max_batch: 1001 is more than 1000");
  s = ConsumeStatus({Join("g", "bad name")});
  EXPECT_EQ(s.error_message(), "join.consumer: only letters, digits, '.', '_' and '-' are allowed");
  // Nothing of that changed the group; the calls that joined left (their
  // dispatcher hands them back right after they end).
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (absl::Now() < until && Info("g").members_size() > 0) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const v1::ConsumerGroupInfo info = Info("g");
  EXPECT_EQ(info.delivered(), 0u);
  EXPECT_EQ(info.members_size(), 0);
}

}  // namespace
}  // namespace logbook
