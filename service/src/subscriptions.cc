#include "subscriptions.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "convert.h"
#include "spdlog/spdlog.h"

namespace logbook::service {
namespace {

using Batch = std::shared_ptr<const std::vector<store::RecordedEvent>>;

bool Matches(const store::EventFilter& f, const store::RecordedEvent& e) {
  if (!f.stream_id.empty() && e.stream_id != f.stream_id) return false;
  if (!f.category.empty() && e.stream_id.substr(0, e.stream_id.find('-')) != f.category) {
    return false;
  }
  if (!f.stream_prefix.empty() && !absl::StartsWith(e.stream_id, f.stream_prefix)) return false;
  if (!f.event_types.empty() &&
      std::find(f.event_types.begin(), f.event_types.end(), e.type) == f.event_types.end()) {
    return false;
  }
  return true;
}

size_t Bytes(const store::RecordedEvent& e) { return e.data.size() + e.metadata.size(); }

// Events go into one batched message while it stays under this many
// (estimated) bytes; one larger event still goes alone. Well under gRPC's
// default 4 MiB receive limit.
constexpr size_t kMaxMessageBytes = 1 << 20;

// An upper estimate of `e`'s size inside an EventBatch: its strings plus 80
// bytes for tags, lengths, the numbers and the timestamp.
size_t WireBytes(const store::RecordedEvent& e) {
  return e.data.size() + e.metadata.size() + e.stream_id.size() + e.type.size() +
         e.event_id.size() + e.content_type.size() + e.correlation_id.size() +
         e.causation_id.size() + (e.redaction_reason ? e.redaction_reason->size() : 0) + 80;
}

}  // namespace

// One Subscribe call. Catch-up reads run on the workers; live batches arrive
// from the hub's tail thread; writes go out one at a time from OnWriteDone.
// With max_events_per_message > 1, each write takes the consecutive events
// at the head of the queue (up to that many and ~1 MiB) as one EventBatch;
// caught_up, checkpoints and fell_behind end a batch, so their order
// relative to events is kept. Catch-up reads ahead of the write in flight
// (see Fetch): at most a page queued, two reads in flight and one message
// being written. Owned by a shared_ptr to itself until OnDone, so the hub's
// weak pointers never dangle. Thread-safe through mu_.
class Subscription final : public grpc::ServerWriteReactor<v1::SubscribeResponse>,
                           public std::enable_shared_from_this<Subscription> {
 public:
  Subscription(SubscriptionHub& hub, const v1::SubscribeRequest& request,
               std::function<void()> on_done)
      : hub_(hub),
        request_(request),
        on_done_(std::move(on_done)),
        max_per_message_(std::max<uint32_t>(1, request.max_events_per_message())) {
    const SubscriptionOptions& o = hub_.options();
    page_ = std::min<uint64_t>(o.catch_up_page, o.max_buffered_events);
    switch (request.target_case()) {
      case v1::SubscribeRequest::kStreamId:
        filter_.stream_id = request.stream_id();
        break;
      case v1::SubscribeRequest::kCategory:
        filter_ = FromProto(request.filter());
        filter_.category = request.category();
        break;
      default:
        filter_ = FromProto(request.filter());
        break;
    }
    windowed_ = filter_.stream_id.empty() && filter_.category.empty() &&
                filter_.stream_prefix.empty() && filter_.event_types.empty();
  }

  // Starts the first step; the caller keeps `self` alive until OnDone.
  void Begin(std::shared_ptr<Subscription> self) {
    self_ = std::move(self);
    {
      absl::MutexLock lock(&mu_);
      ++fetches_;
      Schedule([this] { Resolve(); });
    }
    MaybeFinish();
  }

  // From the tail thread: the log grew to `to`, `batch` holding the new
  // events. False when this subscription overflowed and left the live feed.
  bool Deliver(const Batch& batch, uint64_t to) {
    {
      absl::MutexLock lock(&mu_);
      if (!live_ || ending_) return true;
      size_t events = 0, bytes = 0;
      for (const auto& e : *batch) {
        if (e.global_position > cursor_ && Matches(filter_, e)) {
          ++events;
          bytes += Bytes(e);
        }
      }
      const SubscriptionOptions& o = hub_.options();
      // A subscriber with an empty queue is keeping up and takes the whole
      // (shared) batch; one with a backlog must have room for it.
      if (events > 0 && queued_events_ > 0 &&
          (queued_events_ + events > o.max_buffered_events ||
           queued_bytes_ + bytes > o.max_buffered_bytes)) {
        live_ = false;  // Too slow: back to the table once the queue drains.
        queue_.push_back({Item::kFellBehind, nullptr, 0, cursor_});
        return false;
      }
      for (size_t i = 0; i < batch->size(); ++i) {
        const auto& e = (*batch)[i];
        if (e.global_position > cursor_ && Matches(filter_, e)) Enqueue(batch, i);
      }
      cursor_ = std::max(cursor_, to);
      requested_ = cursor_;  // Live: no read is in flight; one after falling behind starts here.
      MaybeCheckpoint();
    }
    Pump();
    return true;
  }

  // From the tail thread, every checkpoint interval.
  void Tick() {
    {
      absl::MutexLock lock(&mu_);
      if (ending_) return;
      MaybeCheckpoint();
    }
    Pump();
  }

  bool IsLive() {
    absl::MutexLock lock(&mu_);
    return live_;
  }

  // Called by the hub under its lock when this subscription may go live.
  // Returns false when `cursor` is stale.
  bool GoLive(uint64_t published) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    absl::MutexLock lock(&mu_);
    if (cursor_ < published || ending_) return false;
    live_ = true;
    if (!caught_up_sent_) {
      caught_up_sent_ = true;
      queue_.push_back({Item::kCaughtUp, nullptr, 0, cursor_});
      reported_ = cursor_;
    }
    return true;
  }

  void End(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (!ending_) end_status_ = status;
      ending_ = true;
    }
    MaybeFinish();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        ending_ = true;
        end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    Pump();
  }

  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

  void OnDone() override {
    on_done_();
    self_.reset();  // May delete this.
  }

 private:
  struct Item {
    enum Kind { kEvent, kCaughtUp, kCheckpoint, kFellBehind } kind;
    Batch batch;
    size_t index;
    uint64_t position;
  };

  void Schedule(std::function<void()> step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!hub_.workers().TrySubmit(std::move(step))) {
      --fetches_;
      ending_ = true;
      end_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "server overloaded: too many calls waiting for the database");
    }
  }

  void Enqueue(const Batch& batch, size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto& e = (*batch)[index];
    queue_.push_back({Item::kEvent, batch, index, e.global_position});
    ++queued_events_;
    queued_bytes_ += Bytes(e);
    reported_ = e.global_position;
  }

  void MaybeCheckpoint() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time now = absl::Now();
    if (cursor_ > reported_ && now - last_checkpoint_ >= hub_.options().checkpoint_interval) {
      queue_.push_back({Item::kCheckpoint, nullptr, 0, cursor_});
      reported_ = cursor_;
      last_checkpoint_ = now;
    }
  }

  // On a worker: turns the start point into a cursor, then catches up.
  void Resolve() {
    if (auto ended = hub_.ended()) End(*ended);
    uint64_t cursor = 0;
    absl::Status status;
    switch (request_.start_case()) {
      case v1::SubscribeRequest::kAfterPosition:
        cursor = request_.after_position();
        break;
      case v1::SubscribeRequest::kFromNow: {
        auto head = hub_.store().HeadPosition();
        status = head.status();
        if (head.ok()) cursor = *head;
        break;
      }
      case v1::SubscribeRequest::kAfterVersion: {
        store::ReadStreamQuery q;
        q.stream_id = request_.stream_id();
        q.from_version = request_.after_version();
        q.max_count = 1;
        auto events = hub_.store().ReadStream(q);
        status = events.status();
        if (events.ok() && (events->empty() ||
                            events->front().stream_version != request_.after_version())) {
          status = absl::OutOfRangeError(absl::StrCat(
              "after_version: stream '", request_.stream_id(), "' has no version ",
              request_.after_version()));
        } else if (events.ok()) {
          cursor = events->front().global_position;
        }
        break;
      }
      default:
        break;
    }
    {
      absl::MutexLock lock(&mu_);
      --fetches_;
      if (!status.ok()) {
        ending_ = true;
        end_status_ = ToGrpcStatus(status);
      }
      cursor_ = reported_ = requested_ = cursor;
    }
    Pump();  // Starts catching up.
  }

  // On a worker: reads the next range of the backlog, or goes live. Reads
  // up to the newest head the hub heard of, which may be ahead of the tail
  // (an acknowledged append included), so caught_up covers it.
  //
  // Without a filter, ranges are windows of page_ positions, which hold at
  // most page_ events, so the next window is known before this one is read
  // and two reads may run at once: the database answers one while this
  // server decodes and sends the other. Results are enqueued in position
  // order whichever finishes first. With a filter, one read at a time takes
  // the next page_ matching events.
  void Fetch() {
    for (;;) {
      const uint64_t until = hub_.readable();  // Not under mu_: hub before subscription.
      uint64_t from = 0, to = 0;
      {
        absl::MutexLock lock(&mu_);
        known_until_ = std::max(known_until_, until);
        if (ending_) break;
        from = requested_;
        if (from < until) {
          to = windowed_ ? std::min(from + page_, until) : until;
          requested_ = to;  // For a filter: corrected below when the page is full.
          StartFetches();   // The next window, while this one is read.
        } else if (fetches_ > 1 || cursor_ < requested_) {
          break;  // The read still in flight continues from here.
        } else if (queued_events_ > 0) {
          // Join the live feed with no backlog of events, so its first batch
          // fits; Pump comes back here once the queue drained.
          drain_before_live_ = true;
          break;
        }
      }
      if (from >= until) {
        if (hub_.TryGoLive(shared_from_this(), from)) break;
        continue;  // The tail moved on meanwhile; read the rest.
      }
      store::ReadAllQuery q;
      q.from_position = from + 1;
      q.until_position = to;
      q.max_count = page_;
      q.filter = filter_;
      auto events = hub_.store().ReadAll(q);
      absl::MutexLock lock(&mu_);
      if (!events.ok()) {
        ending_ = true;
        end_status_ = ToGrpcStatus(events.status());
        break;
      }
      if (!windowed_ && events->size() == page_) {
        to = requested_ = events->back().global_position;  // Full: the rest comes next.
      }
      arrived_.emplace(from, Arrived{to, std::make_shared<const std::vector<store::RecordedEvent>>(
                                             *std::move(events))});
      // Enqueue what is now contiguous with the cursor.
      for (auto it = arrived_.begin(); it != arrived_.end() && it->first == cursor_;
           it = arrived_.erase(it)) {
        for (size_t i = 0; i < it->second.batch->size(); ++i) Enqueue(it->second.batch, i);
        cursor_ = it->second.to;
      }
      MaybeCheckpoint();
      break;
    }
    {
      absl::MutexLock lock(&mu_);
      --fetches_;
    }
    Pump();
  }

  // Whether Pump should start a Fetch: when idle, or ahead of the write in
  // flight while less than a page is queued (a second one only without a
  // filter, while more is known to be readable); not before the queue
  // drained once the reads reached the tail.
  bool ShouldFetch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ending_ || live_) return false;
    const bool idle = !writing_ && queue_.empty();
    const bool room = !drain_before_live_ && queued_events_ < page_ &&
                      queued_bytes_ < hub_.options().max_buffered_bytes;
    if (fetches_ == 0) return idle || room;
    return windowed_ && fetches_ < 2 && room && requested_ < known_until_;
  }

  void StartFetches() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (ShouldFetch()) {
      drain_before_live_ = false;
      ++fetches_;
      Schedule([this] { Fetch(); });
    }
  }

  // Starts the next write, the next catch-up step, or the finish.
  void Pump() {
    bool start_write = false;
    {
      absl::MutexLock lock(&mu_);
      if (!writing_ && !ending_ && !queue_.empty()) {
        TakeMessage();
        writing_ = start_write = true;
      }
      StartFetches();
    }
    if (start_write) {
      // writing_ keeps everyone else off response_ and sending_.
      BuildMessage();
      StartWrite(&response_);  // Outside the lock: may react inline.
    }
    MaybeFinish();
  }

  // Moves the next message's items from the queue to sending_: one control
  // item, or one event, or (batching) the consecutive events at the head.
  void TakeMessage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    sending_.clear();
    size_t bytes = 0;
    do {
      Item& item = queue_.front();
      if (item.kind == Item::kEvent) {
        const auto& e = (*item.batch)[item.index];
        if (!sending_.empty() && bytes + WireBytes(e) > kMaxMessageBytes) break;
        bytes += WireBytes(e);
        --queued_events_;
        queued_bytes_ -= Bytes(e);
      }
      sending_.push_back(std::move(item));
      queue_.pop_front();
    } while (max_per_message_ > 1 && sending_.front().kind == Item::kEvent &&
             sending_.size() < max_per_message_ && !queue_.empty() &&
             queue_.front().kind == Item::kEvent);
  }

  // Fills response_ from sending_. Called only by the writer (writing_ set).
  void BuildMessage() {
    const Item& first = sending_.front();
    switch (first.kind) {
      case Item::kEvent:
        if (max_per_message_ > 1) {
          // Clear() keeps the batch's RecordedEvents for reuse.
          v1::EventBatch* batch = response_.mutable_events();
          batch->Clear();
          for (const Item& item : sending_) ToProto((*item.batch)[item.index], *batch->add_events());
        } else {
          v1::RecordedEvent* event = response_.mutable_event();
          event->Clear();  // Reused: no field of the previous event may stay.
          ToProto((*first.batch)[first.index], *event);
        }
        break;
      case Item::kCaughtUp:
        response_.mutable_caught_up()->set_global_position(first.position);
        break;
      case Item::kCheckpoint:
        response_.mutable_checkpoint()->set_global_position(first.position);
        break;
      case Item::kFellBehind:
        response_.mutable_fell_behind()->set_global_position(first.position);
        break;
    }
    sending_.clear();  // Drops the references to shared batches.
  }

  void MaybeFinish() {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (!ending_ || writing_ || fetches_ > 0 || finished_) return;
      finished_ = true;
      status = end_status_;
    }
    hub_.Leave(this);
    Finish(status);
  }

  SubscriptionHub& hub_;
  const v1::SubscribeRequest request_;
  std::function<void()> on_done_;
  store::EventFilter filter_;
  bool windowed_ = false;  // No filter: reads by windows of positions, two at once.
  uint64_t page_ = 0;
  const uint32_t max_per_message_;  // 1: one event per message, in `event`.
  std::shared_ptr<Subscription> self_;

  absl::Mutex mu_;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_) = 0;    // Every event up to here is queued or skipped.
  uint64_t reported_ ABSL_GUARDED_BY(mu_) = 0;  // The client was told up to here.
  absl::Time last_checkpoint_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool caught_up_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;        // response_ is being written.
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;           // Worker steps queued or running.
  uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;    // Reads cover everything up to here.
  uint64_t known_until_ ABSL_GUARDED_BY(mu_) = 0;  // The newest readable() a Fetch saw.
  struct Arrived {
    uint64_t to;  // The read covered (its key, to].
    Batch batch;
  };
  std::map<uint64_t, Arrived> arrived_ ABSL_GUARDED_BY(mu_);  // Reads ahead of the cursor.
  bool drain_before_live_ ABSL_GUARDED_BY(mu_) = false;  // Caught up; the queue must drain.
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  std::vector<Item> sending_;       // The next message's items, while writing_.
  v1::SubscribeResponse response_;  // Owned by the write in flight.
};

SubscriptionHub::SubscriptionHub(store::EventStore& store, WorkerPool& workers, std::string dsn,
                                 SubscriptionOptions options)
    : store_(store), workers_(workers), dsn_(std::move(dsn)), options_(options) {}

SubscriptionHub::~SubscriptionHub() {
  EndAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (tail_.joinable()) tail_.join();
  watcher_.reset();
}

absl::Status SubscriptionHub::Start() {
  auto head = store_.HeadPosition();
  if (!head.ok()) return head.status();
  {
    absl::MutexLock lock(&mu_);
    published_ = head_ = *head;
  }
  tail_ = std::thread([this] { TailLoop(); });
  store::LogWatcherOptions watch;
  watch.dsn = dsn_;
  watch.poll_interval = options_.poll_interval;
  watcher_ = store::LogWatcher::Start(watch, [this](uint64_t h) { OnHead(h); });
  return absl::OkStatus();
}

void SubscriptionHub::OnHead(uint64_t head) {
  absl::MutexLock lock(&mu_);
  head_ = std::max(head_, head);
}

uint64_t SubscriptionHub::readable() {
  absl::MutexLock lock(&mu_);
  return std::max(published_, head_);
}

std::optional<grpc::Status> SubscriptionHub::ended() {
  absl::MutexLock lock(&mu_);
  return ended_;
}

size_t SubscriptionHub::size() {
  absl::MutexLock lock(&mu_);
  return all_.size();
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* SubscriptionHub::Subscribe(
    const v1::SubscribeRequest& request, std::function<void()> on_done) {
  auto subscription = std::make_shared<Subscription>(*this, request, std::move(on_done));
  {
    absl::MutexLock lock(&mu_);
    if (!ended_) all_[subscription.get()] = subscription;
  }
  subscription->Begin(subscription);  // Resolve() finds the subscription ended, if so.
  return subscription.get();
}

bool SubscriptionHub::TryGoLive(const std::shared_ptr<Subscription>& subscription,
                                uint64_t cursor) {
  absl::MutexLock lock(&mu_);
  if (cursor < published_) return false;
  if (!subscription->GoLive(published_)) return false;
  live_[subscription.get()] = subscription;
  return true;
}

void SubscriptionHub::Leave(Subscription* subscription) {
  absl::MutexLock lock(&mu_);
  all_.erase(subscription);
  live_.erase(subscription);
}

void SubscriptionHub::EndAll(const grpc::Status& status) {
  std::vector<std::shared_ptr<Subscription>> open;
  {
    absl::MutexLock lock(&mu_);
    ended_ = status;
    for (auto& [ptr, weak] : all_) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) s->End(status);
}

std::vector<std::shared_ptr<Subscription>> SubscriptionHub::LiveSnapshot() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Subscription>> live;
  for (auto& [ptr, weak] : live_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  return live;
}

void SubscriptionHub::TailLoop() {
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
      store::ReadAllQuery q;
      q.from_position = from;
      q.until_position = to;
      q.max_count = to - from + 1;
      auto events = store_.ReadAll(q);
      if (!events.ok()) {
        if (!failing) {
          spdlog::warn("subscriptions: cannot read the log tail ({}); retrying",
                       std::string(events.status().message()));
        }
        failing = true;
        absl::SleepFor(absl::Milliseconds(100));
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
      to = events->back().global_position;
      auto batch = std::make_shared<const std::vector<store::RecordedEvent>>(*std::move(events));
      std::vector<std::shared_ptr<Subscription>> live;
      {
        absl::MutexLock lock(&mu_);
        published_ = to;
        for (auto& [ptr, weak] : live_) {
          if (auto s = weak.lock()) live.push_back(std::move(s));
        }
      }
      std::vector<Subscription*> fell_behind;
      for (auto& s : live) {
        if (!s->Deliver(batch, to)) fell_behind.push_back(s.get());
      }
      if (!fell_behind.empty()) {
        absl::MutexLock lock(&mu_);
        for (Subscription* s : fell_behind) {
          auto it = live_.find(s);
          if (it != live_.end() && !s->IsLive()) live_.erase(it);
        }
      }
    }
    if (absl::Now() >= next_tick) {
      for (auto& s : LiveSnapshot()) s->Tick();
      next_tick = absl::Now() + options_.checkpoint_interval;
    }
  }
}

absl::Status ValidateSubscribe(const store::Limits& limits, const v1::SubscribeRequest& request) {
  switch (request.target_case()) {
    case v1::SubscribeRequest::kStreamId:
      if (auto s = store::ValidateStreamId(limits, "stream_id", request.stream_id()); !s.ok()) {
        return s;
      }
      if (request.has_filter()) {
        return absl::InvalidArgumentError(
            "filter: applies to category and all targets; a stream_id target takes every event "
            "of the stream");
      }
      break;
    case v1::SubscribeRequest::kCategory:
      if (request.category().empty()) {
        return absl::InvalidArgumentError("category: must not be empty");
      }
      break;
    case v1::SubscribeRequest::kAll:
      break;
    default:
      return absl::InvalidArgumentError("target: set one of stream_id, category or all");
  }
  if (request.start_case() == v1::SubscribeRequest::kAfterVersion &&
      request.target_case() != v1::SubscribeRequest::kStreamId) {
    return absl::InvalidArgumentError("after_version: only for a stream_id target");
  }
  store::EventFilter filter = FromProto(request.filter());
  if (request.target_case() == v1::SubscribeRequest::kCategory) filter.category = request.category();
  return store::ValidateFilter(limits, filter);
}

}  // namespace logbook::service
