#include "consumer_group_hub.h"

#include <algorithm>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace logbook::service {

namespace {

// Pending events a group keeps ahead of its consumers, at most.
constexpr size_t kPendingWindow = 20000;
// Members are renewed this often (StoreOptions::member_timeout: 3 s or more).
constexpr absl::Duration kHeartbeatInterval = absl::Seconds(1);
// After a database error, the next try.
constexpr absl::Duration kErrorBackoff = absl::Seconds(1);
// After a round that delivered something, the next at the latest.
constexpr absl::Duration kBusyRecheck = absl::Milliseconds(250);
// While a backlog is coming in, the next round: soon, but not at once, as
// a full window of pending events only empties as consumers settle them.
constexpr absl::Duration kBacklogRecheck = absl::Milliseconds(10);
// Claims a round makes at once, at most (ConsumerGroups has 8 connections,
// shared with acks, fills and the Consume calls' joins).
constexpr size_t kClaimLanes = 4;
// Stream ids an assignment lists, at most.
constexpr size_t kAssignedStreamsListed = 1000;

}  // namespace

// One group's consumers here. Its thread makes every database call of the
// group (but Join, done by the call, and acks and nacks), and when it is
// stopped hands back what calls that already ended held; `mu_` guards what
// calls hand it and is never held across a database call, so Add, Remove
// and Wake never block for long. Sessions are called holding `mu_`, which
// is what makes Remove final.
class ConsumerGroupHub::Dispatcher {
 public:
  Dispatcher(store::ConsumerGroups& groups, std::string group, std::string instance)
      : groups_(groups), group_(std::move(group)), instance_(std::move(instance)),
        thread_([this] { Run(); }) {}

  ~Dispatcher() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  bool Reserve(const std::string& consumer, const std::string& session_name,
               ConsumerSession* session) {
    absl::MutexLock lock(&mu_);
    return consumers_.try_emplace(consumer, Consumer{0, session_name, session, false}).second;
  }

  void Activate(const std::string& consumer, uint32_t max_in_flight) {
    absl::MutexLock lock(&mu_);
    auto it = consumers_.find(consumer);
    if (it == consumers_.end()) return;
    it->second.max_in_flight = max_in_flight;
    it->second.active = true;
    // A member arrived: spread the streams again at once, and bring in what
    // was appended while nobody here consumed (the rounds without active
    // consumers dropped those head moves).
    next_heartbeat_ = absl::InfinitePast();
    head_moved_ = true;
    wake_ = true;
  }

  void Remove(const std::string& consumer, ConsumerSession* session) {
    absl::MutexLock lock(&mu_);
    auto it = consumers_.find(consumer);
    if (it == consumers_.end() || it->second.session != session) return;
    if (it->second.active) {
      leaving_.emplace_back(consumer, it->second.session_name);
      next_heartbeat_ = absl::InfinitePast();
      wake_ = true;
    }
    consumers_.erase(it);
  }

  // `head_moved`: new events may be there to bring in.
  void Wake(bool head_moved) {
    absl::MutexLock lock(&mu_);
    wake_ = true;
    head_moved_ = head_moved_ || head_moved;
  }

  void EndCalls(const absl::Status& status) { EndAll(status, /*forget=*/false); }

 private:
  struct Consumer {
    uint32_t max_in_flight = 0;
    std::string session_name;
    ConsumerSession* session = nullptr;
    bool active = false;  // Joined; until then only reserved.
  };

  void Run() {
    absl::Time due = absl::InfiniteFuture();
    for (;;) {
      std::vector<std::pair<std::string, std::string>> leaving;  // Consumer, session.
      std::map<std::string, Consumer> active;
      bool heartbeat = false, fill = false;
      {
        absl::MutexLock lock(&mu_);
        auto woken = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || wake_; };
        const absl::Time deadline = std::min(due, next_heartbeat_);
        mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
        wake_ = false;
        // Due: a lease another instance left may be there to take back.
        fill = head_moved_ || !caught_up_ || absl::Now() >= due;
        head_moved_ = false;
        leaving.swap(leaving_);
        for (const auto& [name, c] : consumers_) {
          if (c.active) active.emplace(name, c);
        }
        if (absl::Now() >= next_heartbeat_) {
          heartbeat = !active.empty();
          next_heartbeat_ = active.empty() ? absl::InfiniteFuture()
                                           : absl::Now() + kHeartbeatInterval;
        }
      }
      for (const auto& [consumer, session] : leaving) {
        if (absl::Status s = groups_.Leave(group_, consumer, session); !s.ok()) {
          spdlog::warn("consumer group '{}': could not hand back the deliveries of '{}': {}",
                       group_, consumer, s.ToString());
        }
      }
      {
        absl::MutexLock lock(&mu_);
        if (stop_ && leaving_.empty()) return;  // Stopping: only hands back.
        if (stop_) continue;
      }
      if (active.empty()) {
        due = absl::InfiniteFuture();
        continue;
      }
      absl::StatusOr<absl::Time> next = Step(active, heartbeat, fill);
      if (!next.ok()) {
        if (absl::IsNotFound(next.status())) {
          EndAll(next.status());
        } else {
          spdlog::warn("consumer group '{}': {}; trying again in {}", group_,
                       next.status().ToString(), absl::FormatDuration(kErrorBackoff));
        }
        due = absl::Now() + kErrorBackoff;
        continue;
      }
      due = *next;
    }
  }

  // One round: members, new events (when the head moved or the last round
  // did not get to it), deliveries. Returns when to look again: at once
  // when the backlog is not all in; when the next waiting delivery is due
  // when nothing was delivered (the due times cost a scan of the pending
  // events, so a busy round skips them: settles wake it anyway, and it
  // looks again within kBusyRecheck).
  absl::StatusOr<absl::Time> Step(const std::map<std::string, Consumer>& active, bool heartbeat,
                                  bool fill) {
    if (heartbeat) {
      std::vector<std::string> names;
      for (const auto& [name, c] : active) names.push_back(name);
      absl::StatusOr<std::vector<std::string>> live = groups_.Heartbeat(group_, instance_, names);
      if (!live.ok()) return live.status();
      members_ = *std::move(live);
    }
    if (fill) {
      absl::StatusOr<bool> caught_up = groups_.Fill(group_, kPendingWindow);
      if (!caught_up.ok()) return caught_up.status();
      absl::MutexLock lock(&mu_);
      caught_up_ = *caught_up;
    }
    // After the fill, so that a consumer joining a backlog hears of it.
    if (absl::Status s = Assign(active); !s.ok()) return s;
    // Every consumer's claim at once (each is a few round trips; one after
    // the other, consumers would wait on each other), delivered as it comes.
    std::atomic<bool> delivered{false};
    auto claim = [&](const std::string& name, const Consumer& c) -> absl::Status {
      absl::StatusOr<std::vector<store::GroupDelivery>> claimed =
          groups_.Claim(group_, name, c.session_name, members_, c.max_in_flight);
      if (!claimed.ok()) return claimed.status();
      if (claimed->empty()) return absl::OkStatus();
      delivered = true;
      absl::MutexLock lock(&mu_);
      auto it = consumers_.find(name);
      // Gone meanwhile: its Leave, queued behind this round, hands them back.
      if (it != consumers_.end() && it->second.session == c.session) {
        c.session->Deliver(*std::move(claimed));
      }
      return absl::OkStatus();
    };
    // At most kClaimLanes claims at once (the store has a few connections):
    // consumer i goes to lane i % kClaimLanes; lane 0 is this thread.
    std::vector<std::vector<std::pair<const std::string*, const Consumer*>>> lanes(
        std::min(kClaimLanes, active.size()));
    size_t i = 0;
    for (const auto& [name, c] : active) lanes[i++ % lanes.size()].emplace_back(&name, &c);
    auto run_lane = [&](size_t lane) {
      absl::Status status;
      for (const auto& [name, c] : lanes[lane]) {
        absl::Status s = claim(*name, *c);
        if (status.ok()) status = s;
      }
      return status;
    };
    std::vector<std::future<absl::Status>> others;
    for (size_t lane = 1; lane < lanes.size(); ++lane) {
      others.push_back(std::async(std::launch::async, run_lane, lane));
    }
    absl::Status first = run_lane(0);
    for (auto& f : others) {
      absl::Status s = f.get();
      if (first.ok()) first = s;
    }
    if (!first.ok()) return first;
    {
      absl::MutexLock lock(&mu_);
      if (!caught_up_) return absl::Now() + kBacklogRecheck;  // More of the backlog next.
    }
    if (delivered) return absl::Now() + kBusyRecheck;
    absl::StatusOr<std::optional<absl::Time>> due = groups_.NextDue(group_);
    if (!due.ok()) return due.status();
    return due->value_or(absl::InfiniteFuture());
  }

  // Tells each consumer that has not been told since the members last
  // changed which streams it owns (nothing for a ROUND_ROBIN group).
  absl::Status Assign(const std::map<std::string, Consumer>& active) {
    for (auto it = assigned_.begin(); it != assigned_.end();) {
      const bool here = std::any_of(active.begin(), active.end(), [&](const auto& a) {
        return a.second.session_name == it->first;
      });
      it = here ? std::next(it) : assigned_.erase(it);
    }
    for (const auto& [name, c] : active) {
      auto told = assigned_.find(c.session_name);
      if (told != assigned_.end() && told->second == members_) continue;
      absl::StatusOr<std::optional<store::StreamAssignment>> assignment =
          groups_.Assignment(group_, name, members_, kAssignedStreamsListed);
      if (!assignment.ok()) return assignment.status();
      assigned_[c.session_name] = members_;
      if (!assignment->has_value()) continue;
      absl::MutexLock lock(&mu_);
      auto it = consumers_.find(name);
      if (it != consumers_.end() && it->second.session == c.session) {
        c.session->Assign(**std::move(assignment));
      }
    }
    return absl::OkStatus();
  }

  // Ends every call here with `status`. Their sessions leave as usual
  // (Remove), unless the group is gone with them (`forget`).
  void EndAll(const absl::Status& status, bool forget = true) {
    absl::MutexLock lock(&mu_);
    for (auto& [name, c] : consumers_) c.session->End(status);
    if (forget) consumers_.clear();
  }

  store::ConsumerGroups& groups_;
  const std::string group_;
  const std::string instance_;
  std::vector<std::string> members_;  // Live members, sorted; the thread's own.
  // The members each session (by name) was last told of; the thread's own.
  std::map<std::string, std::vector<std::string>> assigned_;
  absl::Mutex mu_;
  std::map<std::string, Consumer> consumers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> leaving_ ABSL_GUARDED_BY(mu_);
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool head_moved_ ABSL_GUARDED_BY(mu_) = true;
  bool caught_up_ ABSL_GUARDED_BY(mu_) = false;  // The last Fill got to the head.
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts after the members above.
};

ConsumerGroupHub::ConsumerGroupHub(store::ConsumerGroups& groups, std::string instance)
    : groups_(groups), instance_(std::move(instance)) {}

ConsumerGroupHub::~ConsumerGroupHub() {
  std::map<std::string, std::unique_ptr<Dispatcher>> dispatchers;
  {
    absl::MutexLock lock(&mu_);
    dispatchers.swap(dispatchers_);
  }
}

std::string ConsumerGroupHub::NewSession() {
  return absl::StrCat(instance_, "/", ++sessions_);
}

bool ConsumerGroupHub::Reserve(const std::string& group, const std::string& consumer,
                               const std::string& session_name, ConsumerSession* session) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Dispatcher>& d = dispatchers_[group];
  if (!d) d = std::make_unique<Dispatcher>(groups_, group, instance_);
  return d->Reserve(consumer, session_name, session);
}

void ConsumerGroupHub::Activate(const std::string& group, const std::string& consumer,
                                uint32_t max_in_flight) {
  absl::MutexLock lock(&mu_);
  if (auto it = dispatchers_.find(group); it != dispatchers_.end()) {
    it->second->Activate(consumer, max_in_flight);
  }
}

void ConsumerGroupHub::Remove(const std::string& group, const std::string& consumer,
                              ConsumerSession* session) {
  absl::MutexLock lock(&mu_);
  if (auto it = dispatchers_.find(group); it != dispatchers_.end()) {
    it->second->Remove(consumer, session);
  }
}

void ConsumerGroupHub::Wake(const std::string& group) {
  absl::MutexLock lock(&mu_);
  if (auto it = dispatchers_.find(group); it != dispatchers_.end()) {
    it->second->Wake(/*head_moved=*/false);
  }
}

void ConsumerGroupHub::EndAll(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (auto& [name, d] : dispatchers_) d->EndCalls(status);
}

void ConsumerGroupHub::WakeAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, d] : dispatchers_) d->Wake(/*head_moved=*/true);
}

}  // namespace logbook::service
