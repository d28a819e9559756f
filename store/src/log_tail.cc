#include "log_tail.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace logbook::store {

bool Matches(const EventFilter& f, const RecordedEvent& e) {
  if (!f.stream_id.empty() && e.stream_id != f.stream_id) return false;
  if (!f.category.empty() && e.stream_id.substr(0, e.stream_id.find('-')) != f.category) {
    return false;
  }
  if (!f.stream_prefix.empty() && !absl::StartsWith(e.stream_id, f.stream_prefix)) return false;
  if (!f.event_types.empty() &&
      std::find(f.event_types.begin(), f.event_types.end(), e.type) == f.event_types.end()) {
    return false;
  }
  if (!f.scopes.empty() &&
      std::none_of(f.scopes.begin(), f.scopes.end(),
                   [&](const std::string& scope) { return ScopeCovers(scope, e.stream_id); })) {
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<LogTail>> LogTail::Start(EventStore& store, Executor executor,
                                                        const std::string& dsn,
                                                        const SubscriptionOptions& options) {
  auto tail = std::make_unique<LiveTail>(store, std::move(executor), options);
  if (absl::Status s = tail->Start(dsn); !s.ok()) return s;
  return tail;
}

LiveTail::LiveTail(EventStore& store, Executor executor, SubscriptionOptions options)
    : store_(store),
      executor_(std::move(executor)),
      options_(options),
      memory_(options.max_memory, executor_) {}

LiveTail::~LiveTail() {
  EndAll(absl::UnavailableError("server shutting down"));
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (tail_.joinable()) tail_.join();
  watcher_.reset();
}

absl::Status LiveTail::Start(const std::string& dsn) {
  auto head = store_.HeadPosition();
  if (!head.ok()) return head.status();
  // The tail reads every tenant's events: fail now, not at the first append,
  // when the store's admin connection may not.
  ReadAllQuery probe;
  probe.tenant = kAllTenants;
  probe.from_position = *head + 1;
  probe.max_count = 1;
  if (auto read = store_.ReadAll(probe); !read.ok()) {
    return absl::Status(read.status().code(),
                        absl::StrCat("the live tail cannot read the log: ", read.status().message()));
  }
  {
    absl::MutexLock lock(&mu_);
    published_ = head_ = *head;
  }
  tail_ = std::thread([this] { TailLoop(); });
  LogWatcherOptions watch;
  watch.dsn = dsn;
  watch.poll_interval = options_.poll_interval;
  watcher_ = LogWatcher::Start(watch, [this](uint64_t h) { OnHead(h); });
  return absl::OkStatus();
}

void LiveTail::OnHead(uint64_t head) {
  absl::MutexLock lock(&mu_);
  head_ = std::max(head_, head);
}

uint64_t LiveTail::readable() {
  absl::MutexLock lock(&mu_);
  return std::max(published_, head_);
}

std::optional<absl::Status> LiveTail::ended() {
  absl::MutexLock lock(&mu_);
  return ended_;
}

size_t LiveTail::size() {
  absl::MutexLock lock(&mu_);
  return all_.size();
}

std::shared_ptr<Subscription> LiveTail::Subscribe(const SubscriptionRequest& request,
                                                  SubscriptionConsumer& consumer) {
  auto feed = std::make_shared<Feed>(*this, request, consumer);
  {
    absl::MutexLock lock(&mu_);
    if (!ended_) all_[feed.get()] = feed;
  }
  return feed;  // Its first step finds the tail ended, if so.
}

bool LiveTail::TryGoLive(const std::shared_ptr<Feed>& feed, uint64_t cursor) {
  absl::MutexLock lock(&mu_);
  if (cursor < published_) return false;
  if (!feed->GoLive(published_)) return false;
  live_[feed.get()] = feed;
  return true;
}

void LiveTail::Leave(Feed* feed) {
  absl::MutexLock lock(&mu_);
  all_.erase(feed);
  live_.erase(feed);
}

void LiveTail::EndAll(const absl::Status& status) {
  std::vector<std::shared_ptr<Feed>> open;
  {
    absl::MutexLock lock(&mu_);
    ended_ = status;
    for (auto& [ptr, weak] : all_) {
      if (auto f = weak.lock()) open.push_back(std::move(f));
    }
  }
  for (auto& f : open) f->End(status);
}

std::vector<std::shared_ptr<Feed>> LiveTail::LiveFeeds() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Feed>> live;
  for (auto& [ptr, weak] : live_) {
    if (auto f = weak.lock()) live.push_back(std::move(f));
  }
  return live;
}

void LiveTail::TailLoop() {
  absl::Time next_tick = absl::Now() + options_.checkpoint_interval;
  bool failing = false;
  for (;;) {
    uint64_t from = 0, to = 0;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || head_ > published_;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), next_tick);
      if (stopping_) return;
      if (live_.empty()) {
        // Nobody to deliver to: subscriptions still catching up read the
        // table up to readable() and go live only once at published_.
        published_ = std::max(published_, head_);
      } else if (head_ > published_) {
        from = published_ + 1;
        to = std::min(head_, published_ + options_.tail_page);
      }
    }
    if (from > 0) {
      ReadAllQuery q;
      q.tenant = kAllTenants;  // Each subscription takes its tenant's.
      q.from_position = from;
      q.until_position = to;
      q.max_count = to - from + 1;
      q.max_bytes = options_.tail_bytes;
      auto events = store_.ReadAll(q);
      if (!events.ok()) {
        if (!failing) {
          spdlog::warn("subscriptions: cannot read the log tail ({}); retrying",
                       std::string(events.status().message()));
        }
        failing = true;
        absl::SleepFor(options_.tail_retry_delay);
        continue;
      }
      if (failing) spdlog::info("subscriptions: reading the log tail again");
      failing = false;
      if (events->empty()) {
        // Positions at or below the head hold no event: a recorded gap.
        absl::MutexLock lock(&mu_);
        published_ = to;
        continue;
      }
      to = events->back().global_position;  // All of (from, to], or up to its byte bound.
      size_t bytes = 0;
      const EventBatch batch = HoldBatch(*std::move(events), memory_, 0, &bytes);
      std::vector<std::shared_ptr<Feed>> live;
      {
        absl::MutexLock lock(&mu_);
        published_ = to;
        for (auto& [ptr, weak] : live_) {
          if (auto f = weak.lock()) live.push_back(std::move(f));
        }
      }
      std::vector<Feed*> fell_behind;
      for (auto& f : live) {
        if (!f->Deliver(batch, bytes, to)) fell_behind.push_back(f.get());
      }
      if (!fell_behind.empty()) {
        absl::MutexLock lock(&mu_);
        for (Feed* f : fell_behind) {
          auto it = live_.find(f);
          if (it != live_.end() && !f->IsLive()) live_.erase(it);
        }
      }
    }
    if (absl::Now() >= next_tick) {
      memory_.Kick();
      for (auto& f : LiveFeeds()) f->Tick();
      next_tick = absl::Now() + options_.checkpoint_interval;
    }
  }
}

}  // namespace logbook::store
