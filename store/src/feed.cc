#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "log_tail.h"
#include "spdlog/spdlog.h"

namespace logbook::store {
namespace {

// Events go into one message while it stays under this many (estimated)
// bytes; one larger event still goes alone. Well under gRPC's default 4 MiB
// receive limit.
constexpr size_t kMaxMessageBytes = 1 << 20;

// An upper estimate of `e`'s size in a message: its strings plus 80 bytes
// for tags, lengths, the numbers and the timestamp.
size_t MessageBytes(const RecordedEvent& e) {
  return e.data.size() + e.metadata.size() + e.stream_id.size() + e.type.size() +
         e.event_id.size() + e.content_type.size() + e.correlation_id.size() +
         e.causation_id.size() + e.tenant.size() + e.written_by.size() + e.traceparent.size() +
         (e.redaction_reason ? e.redaction_reason->size() : 0) + 80;
}

}  // namespace

Feed::Feed(LiveTail& tail, const SubscriptionRequest& request, SubscriptionConsumer& consumer)
    : tail_(tail),
      consumer_(consumer),
      request_(request),
      filter_(request.filter),
      max_per_message_(std::max<uint32_t>(1, request.max_events_per_message)) {
  const SubscriptionOptions& o = tail_.options();
  page_ = std::max<uint64_t>(1, std::min<uint64_t>(o.catch_up_page, o.max_buffered_events));
  windowed_ = filter_.stream_id.empty() && filter_.category.empty() &&
              filter_.stream_prefix.empty() && filter_.event_types.empty() &&
              filter_.scopes.empty();
  read_bytes_ = std::max<size_t>(1, o.catch_up_bytes);
  reservation_ = ReadReservation(read_bytes_, page_, tail_.store().limits().max_event_bytes);
  budget_ = std::max(o.max_buffered_bytes, 2 * reservation_);
}

void Feed::Start() {
  {
    absl::MutexLock lock(&mu_);
    MemoryBudget& memory = tail_.memory();
    if (!memory.HasRoom(reservation_)) {
      Fail(absl::ResourceExhaustedError(absl::StrCat(
          "subscription memory is used up: open subscriptions hold ", memory.used(),
          " bytes, and a new one needs ", reservation_, " more, over the ", memory.cap(),
          " bytes that --max-subscription-memory allows; retry later")));
    } else {
      ++fetches_;
      Schedule([self = shared_from_this()] { self->Resolve(); });
    }
  }
  MaybeFinish();
}

bool Feed::Deliver(const EventBatch& batch, size_t batch_bytes, uint64_t to) {
  {
    absl::MutexLock lock(&mu_);
    if (!live_ || ending_) return true;
    LiveRoom room;
    for (const auto& e : *batch) {
      if (e.global_position > cursor_ && Wants(e)) ++room.events;
    }
    room.batch_bytes = batch_bytes;
    room.queued_events = queued_events_;
    room.held = held_;
    room.idle = queue_.empty() && !sending_;
    room.max_events = tail_.options().max_buffered_events;
    room.budget = budget_;
    room.over_cap = room.events > 0 && !room.idle && tail_.memory().OverCap();
    if (!TakesLiveBatch(room)) {
      live_ = false;  // Too slow: back to the table once the queue drains.
      queue_.push_back({SubscriptionItem::Kind::kFellBehind, nullptr, 0, cursor_});
      return false;
    }
    EnqueueBatch(batch, batch_bytes, /*filtered=*/true);
    cursor_ = std::max(cursor_, to);
    requested_ = cursor_;  // Live: no read is in flight; one after falling behind starts here.
    MaybeCheckpoint();
  }
  Pump();
  return true;
}

void Feed::Tick() {
  {
    absl::MutexLock lock(&mu_);
    if (ending_) return;
    MaybeCheckpoint();
  }
  Pump();
}

bool Feed::IsLive() {
  absl::MutexLock lock(&mu_);
  return live_;
}

bool Feed::GoLive(uint64_t published) {
  absl::MutexLock lock(&mu_);
  if (cursor_ < published || ending_) return false;
  live_ = true;
  if (!caught_up_sent_) {
    caught_up_sent_ = true;
    queue_.push_back({SubscriptionItem::Kind::kCaughtUp, nullptr, 0, cursor_});
    reported_ = cursor_;
  }
  return true;
}

void Feed::End(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (!ending_) end_status_ = status;
    ending_ = true;
  }
  MaybeFinish();
}

void Feed::MessageDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    sending_ = false;
    if (!ok) Fail(absl::CancelledError("the client went away"));
  }
  Pump();
}

void Feed::Fail(const absl::Status& status) {
  if (!ending_) end_status_ = status;
  ending_ = true;
}

void Feed::Schedule(std::function<void()> step) {
  if (!tail_.executor()(std::move(step))) {
    --fetches_;
    Fail(absl::UnavailableError("server overloaded: too many calls waiting for the database"));
  }
}

size_t Feed::EnqueueBatch(const EventBatch& batch, size_t bytes, bool filtered) {
  size_t queued = 0;
  for (size_t i = 0; i < batch->size(); ++i) {
    const auto& e = (*batch)[i];
    if (filtered && (e.global_position <= cursor_ || !Wants(e))) continue;
    queue_.push_back({SubscriptionItem::Kind::kEvent, batch, i, e.global_position});
    reported_ = e.global_position;
    ++queued;
  }
  queued_events_ += queued;
  // The batch stays alive until its last queued event has left.
  if (queued > 0) {
    queue_.back().charge = bytes;
    held_ += bytes;
  }
  return queued;
}

void Feed::MaybeCheckpoint() {
  const absl::Time now = absl::Now();
  if (cursor_ > reported_ && now - last_checkpoint_ >= tail_.options().checkpoint_interval) {
    queue_.push_back({SubscriptionItem::Kind::kCheckpoint, nullptr, 0, cursor_});
    reported_ = cursor_;
    last_checkpoint_ = now;
  }
}

void Feed::Resolve() {
  if (auto ended = tail_.ended()) End(*ended);
  uint64_t cursor = 0;
  absl::Status status;
  switch (request_.start) {
    case SubscriptionRequest::Start::kBeginning:
      break;
    case SubscriptionRequest::Start::kAfterPosition:
      cursor = request_.after;
      break;
    case SubscriptionRequest::Start::kNow: {
      auto head = tail_.store().HeadPosition();
      status = head.status();
      if (head.ok()) cursor = *head;
      break;
    }
    case SubscriptionRequest::Start::kAfterVersion: {
      ReadStreamQuery q;
      q.tenant = request_.tenant;
      q.stream_id = filter_.stream_id;
      q.from_version = request_.after;
      q.max_count = 1;
      auto events = tail_.store().ReadStream(q);
      status = events.status();
      if (events.ok() &&
          (events->empty() || events->front().stream_version != request_.after)) {
        status = absl::OutOfRangeError(absl::StrCat("after_version: stream '", filter_.stream_id,
                                                    "' has no version ", request_.after));
      } else if (events.ok()) {
        cursor = events->front().global_position;
      }
      break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    --fetches_;
    if (!status.ok()) Fail(status);
    cursor_ = reported_ = requested_ = cursor;
  }
  Pump();  // Starts catching up.
}

void Feed::Fetch() {
  ReadNext();
  {
    absl::MutexLock lock(&mu_);
    --fetches_;
  }
  Pump();
}

// Reads up to the newest head the tail heard of, which may be ahead of the
// tail (an acknowledged append included), so caught_up covers it. Results
// are enqueued in position order whichever read finishes first.
void Feed::ReadNext() {
  const uint64_t until = tail_.readable();  // Not under mu_: the tail's lock comes first.
  uint64_t from = 0, to = 0;
  {
    absl::MutexLock lock(&mu_);
    known_until_ = std::max(known_until_, until);
    if (ending_) return;
    if (!holes_.empty()) {
      std::tie(from, to) = *holes_.begin();
      holes_.erase(holes_.begin());
    } else if (requested_ < until) {
      from = requested_;
      to = windowed_ ? std::min(from + page_, until) : until;
      requested_ = to;
    } else if (fetches_ > 1 || cursor_ < requested_) {
      return;  // The read still in flight continues from here.
    } else if (queued_events_ > 0) {
      // Join the live feed with no backlog of events, so its first batch
      // fits; Pump comes back here once the queue drained.
      drain_before_live_ = true;
      return;
    } else {
      from = requested_;
    }
    if (to > 0) {
      // The server's memory first: when it is used up, wait for a Release
      // (which calls Retry), and read this range then.
      std::function<void()> wake;
      if (!waiting_) {
        wake = [weak = weak_from_this()] {
          if (auto self = weak.lock()) self->Retry();
        };
      }
      if (!tail_.memory().TryReserve(reservation_, std::move(wake))) {
        if (!waiting_) {
          spdlog::debug("a subscription waits for subscription memory: {} bytes of {} held",
                        tail_.memory().used(), tail_.memory().cap());
        }
        waiting_ = true;
        holes_.emplace(from, to);
        return;
      }
      held_ += reservation_;
      ++reads_;
      StartFetches();  // The next window, while this one is read.
    }
  }
  if (to == 0) {
    // Live; or the tail moved on meanwhile, and Pump starts a read of the rest.
    tail_.TryGoLive(shared_from_this(), from);
    return;
  }
  ReadAllQuery q;
  q.tenant = request_.tenant;
  q.from_position = from + 1;
  q.until_position = to;
  q.max_count = page_;
  q.max_bytes = read_bytes_;
  q.filter = filter_;
  auto events = tail_.CatchUpStore(to).ReadAll(q);
  if (!events.ok()) {
    absl::MutexLock lock(&mu_);
    --reads_;
    held_ -= reservation_;
    tail_.memory().Release(reservation_);
    Fail(events.status());
    return;
  }
  size_t payload = 0;
  for (const auto& e : *events) payload += e.data.size() + e.metadata.size();
  uint64_t last = to;
  // Full, by count or by bytes: the rest of the range comes next.
  if (!events->empty() && (events->size() == page_ || payload >= read_bytes_)) {
    last = events->back().global_position;
  }
  size_t bytes = 0;
  EventBatch batch = HoldBatch(*std::move(events), tail_.memory(), reservation_, &bytes);
  absl::MutexLock lock(&mu_);
  --reads_;
  held_ = held_ - reservation_ + bytes;  // HoldBatch settled the reservation.
  if (last < to) holes_.emplace(last, to);
  arrived_.emplace(from, Arrived{last, std::move(batch), bytes});
  // Enqueue what is now contiguous with the cursor.
  for (auto it = arrived_.begin(); it != arrived_.end() && it->first == cursor_;
       it = arrived_.erase(it)) {
    held_ -= it->second.bytes;  // Now carried by its last queued event, if any.
    EnqueueBatch(it->second.batch, it->second.bytes, /*filtered=*/false);
    cursor_ = it->second.to;
  }
  MaybeCheckpoint();
}

void Feed::Retry() {
  {
    absl::MutexLock lock(&mu_);
    waiting_ = false;
  }
  Pump();
}

// Whether Pump should start a Fetch: when idle, or ahead of the message out
// while less than a page is queued and the read fits the budget (a second
// one only without a filter, while nothing waits ahead of the cursor and
// more is known to be readable); not before the queue drained once the reads
// reached the tail, nor while waiting for memory. Fetches that have not
// reserved yet count as if they had.
bool Feed::ShouldFetch() {
  if (ending_ || live_ || waiting_) return false;
  const bool idle = !sending_ && queue_.empty();
  const size_t pending = static_cast<size_t>(fetches_ - reads_) * reservation_;
  const bool room = !drain_before_live_ && queued_events_ < page_ &&
                    MayStartRead(held_ + pending, reservation_, budget_);
  if (fetches_ == 0) return idle || room;
  return windowed_ && fetches_ < 2 && room && arrived_.empty() && holes_.empty() &&
         requested_ < known_until_;
}

void Feed::StartFetches() {
  while (ShouldFetch()) {
    drain_before_live_ = false;
    ++fetches_;
    Schedule([self = shared_from_this()] { self->Fetch(); });
  }
}

void Feed::Pump() {
  std::vector<SubscriptionItem> message;
  {
    absl::MutexLock lock(&mu_);
    if (!sending_ && !ending_ && !queue_.empty()) {
      message = TakeMessage();
      sending_ = true;
    }
    StartFetches();
  }
  if (!message.empty()) consumer_.Send(std::move(message));  // Outside the lock: may call back.
  MaybeFinish();
}

std::vector<SubscriptionItem> Feed::TakeMessage() {
  std::vector<SubscriptionItem> message;
  size_t bytes = 0;
  do {
    Item& item = queue_.front();
    if (item.kind == SubscriptionItem::Kind::kEvent) {
      const auto& e = (*item.batch)[item.index];
      if (!message.empty() && bytes + MessageBytes(e) > kMaxMessageBytes) break;
      bytes += MessageBytes(e);
      --queued_events_;
    }
    held_ -= item.charge;
    message.push_back({item.kind, std::move(item.batch), item.index, item.position});
    queue_.pop_front();
  } while (max_per_message_ > 1 && message.front().kind == SubscriptionItem::Kind::kEvent &&
           message.size() < max_per_message_ && !queue_.empty() &&
           queue_.front().kind == SubscriptionItem::Kind::kEvent);
  return message;
}

void Feed::MaybeFinish() {
  absl::Status status;
  std::deque<Item> queue;
  std::map<uint64_t, Arrived> arrived;
  {
    absl::MutexLock lock(&mu_);
    if (!ending_ || sending_ || fetches_ > 0 || finished_) return;
    finished_ = true;
    status = end_status_;
    // Give the events back now, not when the last owner lets go.
    queue.swap(queue_);
    arrived.swap(arrived_);
    held_ = 0;
  }
  queue.clear();
  arrived.clear();
  tail_.Leave(this);
  consumer_.OnEnded(status);
}

}  // namespace logbook::store
