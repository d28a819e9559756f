#include "logbook/client/worker.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace logbook {
namespace {

// The payload of a handler's status that names a nack action other than a
// plain RETRY: "park", "skip" or "retry <milliseconds>".
constexpr char kNackPayload[] = "logbook.worker/nack";

// Ids per ack or nack message, the server's limit.
constexpr size_t kMaxIdsPerMessage = 10000;
// Bytes of a nack's reason, the server's limit.
constexpr size_t kMaxReasonBytes = 1024;
constexpr int64_t kMaxRetryDelayMs = 3600000;

absl::Status WithNack(absl::Status status, absl::string_view action) {
  status.SetPayload(kNackPayload, absl::Cord(action));
  return status;
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Whether a Consume call that ended with `status` is worth opening again.
bool Reconnectable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:  // The server ended it without an error (e.g. shutting down).
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

// `text` cut to at most `limit` bytes, not inside a UTF-8 sequence.
std::string Truncated(absl::string_view text, size_t limit) {
  if (text.size() <= limit) return std::string(text);
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

// The nack for a delivery whose handler returned `status` (not OK).
v1::ConsumerNack NackFor(uint64_t id, const absl::Status& status) {
  v1::ConsumerNack nack;
  nack.add_delivery_ids(id);
  nack.set_action(v1::RETRY);
  std::string reason(status.message());
  if (reason.empty()) reason = absl::StatusCodeToString(status.code());
  nack.set_reason(Truncated(reason, kMaxReasonBytes));
  if (auto action = status.GetPayload(kNackPayload)) {
    const std::string a(*action);
    int64_t ms = 0;
    if (a == "park") {
      nack.set_action(v1::PARK);
    } else if (a == "skip") {
      nack.set_action(v1::SKIP);
    } else if (absl::StartsWith(a, "retry ") && absl::SimpleAtoi(a.substr(6), &ms)) {
      nack.set_retry_delay_ms(static_cast<uint32_t>(std::clamp<int64_t>(ms, 0, kMaxRetryDelayMs)));
    }
  }
  return nack;
}

}  // namespace

absl::Status Park(absl::string_view reason) {
  return WithNack(absl::FailedPreconditionError(reason), "park");
}

absl::Status Skip(absl::string_view reason) {
  return WithNack(absl::FailedPreconditionError(reason), "skip");
}

absl::Status RetryAfter(absl::Duration delay, absl::string_view reason) {
  return WithNack(absl::UnavailableError(reason),
                  absl::StrCat("retry ", absl::ToInt64Milliseconds(delay)));
}

// One Consume call. The Worker's Run() thread reads and calls the handler;
// a writer thread of the call's own sends the join's acks and nacks (gRPC
// allows one Read and one Write at a time), so acks go out in batches while
// the reader waits. Stop() may come from any thread.
class Worker::Connection {
 public:
  explicit Connection(const WorkerOptions& options) : options_(options) {}

  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>> stream;

  // The server accepted the join; `max_in_flight` is in effect.
  void Joined(uint32_t max_in_flight) {
    absl::MutexLock lock(&mu_);
    joined_ = true;
    max_in_flight_ = max_in_flight;
    cv_.Signal();
  }

  // Before handing a delivery to the handler: false (and the delivery is
  // left to go back to the group) once stopping.
  bool BeginHandling() {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    handling_ = true;
    ++received_;
    return true;
  }

  // After the handler: queues the ack (OK) or nack for the writer.
  void EndHandling(uint64_t id, const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    handling_ = false;
    if (status.ok()) {
      if (acks_.empty()) first_ack_at_ = absl::Now();
      acks_.push_back(id);
    } else {
      nacks_.push_back(NackFor(id, status));
    }
    cv_.Signal();
  }

  // Ends the call gracefully: before the join was accepted at once, else
  // once the handler call in progress is done and the acks are sent.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (!joined_) ctx.TryCancel();
    cv_.Signal();
  }

  // The reader saw the call end; the writer stops writing.
  void Ended() {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    cv_.Signal();
  }

  // The writer thread's body: sends what is queued, in batches; after
  // Stop(), flushes, half-closes and gives the server stop_timeout to end
  // the call before cancelling it.
  void Write() {
    const size_t batch = std::clamp<size_t>(options_.ack_batch_size, 1, kMaxIdsPerMessage);
    for (;;) {
      std::vector<v1::ConsumeRequest> messages;
      bool finish = false;
      {
        absl::MutexLock lock(&mu_);
        for (;;) {
          if (ended_) return;
          const bool flush_stop = stopping_ && !handling_;
          // The server sends nothing more until it gets acks: send them now.
          const bool full = received_ - sent_ >= max_in_flight_;
          if (!nacks_.empty() || acks_.size() >= batch || flush_stop ||
              (!acks_.empty() && (full || absl::Now() >= first_ack_at_ + options_.ack_delay))) {
            break;
          }
          cv_.WaitWithDeadline(&mu_, acks_.empty() ? absl::InfiniteFuture()
                                                   : first_ack_at_ + options_.ack_delay);
        }
        for (v1::ConsumerNack& nack : nacks_) {
          *messages.emplace_back().mutable_nack() = std::move(nack);
          ++sent_;
        }
        nacks_.clear();
        for (size_t i = 0; i < acks_.size(); i += kMaxIdsPerMessage) {
          v1::ConsumerAck* ack = messages.emplace_back().mutable_ack();
          const size_t end = std::min(acks_.size(), i + kMaxIdsPerMessage);
          ack->mutable_delivery_ids()->Add(acks_.begin() + i, acks_.begin() + end);
        }
        sent_ += acks_.size();
        acks_.clear();
        finish = stopping_ && !handling_;
      }
      for (const v1::ConsumeRequest& message : messages) {
        if (!stream->Write(message)) {
          ctx.TryCancel();  // The call is over; the reader sees its status.
          return;
        }
      }
      if (finish) {
        stream->WritesDone();
        absl::MutexLock lock(&mu_);
        const absl::Time deadline = absl::Now() + options_.stop_timeout;
        while (!ended_ && !cv_.WaitWithDeadline(&mu_, deadline)) {
        }
        if (!ended_) ctx.TryCancel();
        return;
      }
    }
  }

 private:
  const WorkerOptions& options_;
  absl::Mutex mu_;
  absl::CondVar cv_;  // Signalled on every change the writer waits for.
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool handling_ ABSL_GUARDED_BY(mu_) = false;  // A handler call is in progress.
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t max_in_flight_ ABSL_GUARDED_BY(mu_) = std::numeric_limits<uint32_t>::max();
  uint64_t received_ ABSL_GUARDED_BY(mu_) = 0;  // Deliveries handed to the handler.
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;      // Of them, acked or nacked on the wire.
  std::vector<uint64_t> acks_ ABSL_GUARDED_BY(mu_);
  absl::Time first_ack_at_ ABSL_GUARDED_BY(mu_);  // When the oldest of acks_ was queued.
  std::vector<v1::ConsumerNack> nacks_ ABSL_GUARDED_BY(mu_);
};

Worker::Worker(Client& client, WorkerOptions options, Handler handler)
    : client_(client), options_(std::move(options)), handler_(std::move(handler)) {}

Worker::~Worker() {
  Stop();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* running) { return !*running; }, &running_));
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  if (connection_ != nullptr) connection_->Stop();
}

absl::Status Worker::Run() {
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::FailedPreconditionError("Worker::Run is already running");
    running_ = true;
  }
  absl::Duration backoff = client_.options().initial_backoff;
  absl::Status result;
  bool ever_joined = false;
  for (;;) {
    bool joined = false;
    absl::Status status = RunConnection(&joined);
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      // Asked to stop: fine unless the last acks may not have reached the server.
      if (!status.ok() && !absl::IsCancelled(status)) result = status;
      break;
    }
    // Refused the name again after a reconnect: most likely this worker's
    // own earlier call, which the server has not seen end yet.
    const bool name_taken_again = ever_joined && !joined &&
                                  (absl::IsAlreadyExists(status) ||
                                   absl::IsFailedPrecondition(status));
    if (!Reconnectable(status) && !name_taken_again) {
      result = status;
      break;
    }
    ever_joined = ever_joined || joined;
    if (joined) backoff = client_.options().initial_backoff;
    if (options_.on_disconnected) {
      mu_.Unlock();
      options_.on_disconnected(status, backoff);
      mu_.Lock();
    }
    mu_.AwaitWithDeadline(absl::Condition(&stopping_), absl::Now() + backoff);
    if (stopping_) break;
    backoff = std::min(backoff * 2, client_.options().max_backoff);
  }
  running_ = false;
  return result;
}

void Worker::Handle(Connection& connection, const v1::Delivery& delivery) {
  if (!connection.BeginHandling()) return;  // Stopping: it goes back to the group.
  absl::Status status;
  try {
    status = handler_(delivery);
  } catch (const std::exception& e) {
    status = absl::UnknownError(absl::StrCat("handler threw: ", e.what()));
  } catch (...) {
    status = absl::UnknownError("handler threw an exception that is not a std::exception");
  }
  connection.EndHandling(delivery.delivery_id(), status);
}

absl::Status Worker::RunConnection(bool* joined) {
  Connection connection(options_);
  // An outage is waited out rather than failed fast; Stop() cancels the wait.
  connection.ctx.set_wait_for_ready(true);
  AddCallMetadata(connection.ctx, client_.options());
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::OkStatus();
    connection_ = &connection;
  }
  connection.stream = client_.stub().Consume(&connection.ctx);
  v1::ConsumeRequest join;
  join.mutable_join()->set_group(options_.group);
  join.mutable_join()->set_consumer(options_.consumer);
  join.mutable_join()->set_max_in_flight(options_.max_in_flight);
  join.mutable_join()->set_max_batch(options_.max_batch);
  std::thread writer;
  if (connection.stream->Write(join)) {
    writer = std::thread([&connection] { connection.Write(); });
    v1::ConsumeResponse response;
    while (connection.stream->Read(&response)) {
      if (response.has_joined()) {
        *joined = true;
        connection.Joined(response.joined().max_in_flight());
        if (options_.on_joined) options_.on_joined(response.joined());
        continue;
      }
      if (response.has_assignment()) {
        if (options_.on_assignment) options_.on_assignment(response.assignment());
        continue;
      }
      if (response.has_delivery()) {
        Handle(connection, response.delivery());
      } else if (response.has_deliveries()) {
        for (const v1::Delivery& delivery : response.deliveries().deliveries()) {
          Handle(connection, delivery);
        }
      }  // Else something newer than this client.
    }
  }
  connection.Ended();
  if (writer.joinable()) writer.join();
  const grpc::Status status = connection.stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    connection_ = nullptr;
  }
  return FromGrpc(status);
}

}  // namespace logbook
