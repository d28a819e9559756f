#include "logbook/client/client.h"

#include <grpcpp/grpcpp.h>
#include <uuid/uuid.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace logbook {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Whether the same call may simply be made again.
bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::UNKNOWN ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

template <typename Request>
absl::StatusOr<std::vector<v1::RecordedEvent>> ReadAllOf(
    std::unique_ptr<grpc::ClientReader<v1::ReadResponse>> reader) {
  std::vector<v1::RecordedEvent> events;
  v1::ReadResponse response;
  while (reader->Read(&response)) events.push_back(std::move(*response.mutable_event()));
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpc(status);
  return events;
}

class ResumingSubscription final : public Subscription {
 public:
  ResumingSubscription(v1::EventStore::Stub& stub, const ClientOptions& options,
                       v1::SubscribeRequest request,
                       std::function<bool(const v1::SubscribeResponse&)> handler)
      : stub_(stub),
        options_(options),
        request_(std::move(request)),
        handler_(std::move(handler)),
        thread_([this] { Run(); }) {}

  ~ResumingSubscription() override {
    Stop();
    thread_.join();
  }

  void Stop() override {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    if (ctx_ != nullptr) ctx_->TryCancel();
  }

  absl::Status Wait() override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    return result_;
  }

 private:
  void Run() {
    absl::Duration backoff = options_.initial_backoff;
    absl::Status result;
    for (;;) {
      grpc::ClientContext ctx;
      // A subscription outlives outages: wait for the server to be reachable
      // instead of failing fast while the channel reconnects.
      ctx.set_wait_for_ready(true);
      {
        absl::MutexLock lock(&mu_);
        if (stopped_) {
          result = absl::CancelledError("subscription stopped");
          break;
        }
        ctx_ = &ctx;
      }
      auto reader = stub_.Subscribe(&ctx, request_);
      v1::SubscribeResponse response;
      bool handler_done = false;
      while (reader->Read(&response)) {
        backoff = options_.initial_backoff;  // Delivering again: reset.
        uint64_t position = 0;
        switch (response.content_case()) {
          case v1::SubscribeResponse::kEvent:
            position = response.event().global_position();
            break;
          case v1::SubscribeResponse::kCheckpoint:
            position = response.checkpoint().global_position();
            break;
          case v1::SubscribeResponse::kCaughtUp:
            position = response.caught_up().global_position();
            break;
          default:
            break;
        }
        if (!handler_(response)) {
          handler_done = true;
          ctx.TryCancel();
          break;
        }
        if (position > 0) request_.set_after_position(position);  // Resume after it.
      }
      grpc::Status status = reader->Finish();
      {
        absl::MutexLock lock(&mu_);
        ctx_ = nullptr;
      }
      if (handler_done) break;
      if (!Retryable(status.error_code())) {
        result = status.ok() ? absl::OkStatus() : FromGrpc(status);
        if (status.error_code() == grpc::StatusCode::CANCELLED) {
          result = absl::CancelledError("subscription stopped");
        }
        break;
      }
      // Disconnected: wait, then resume after the last delivered position.
      const absl::Time until = absl::Now() + backoff;
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&stopped_), until);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    absl::MutexLock lock(&mu_);
    result_ = result;
    done_ = true;
  }

  v1::EventStore::Stub& stub_;
  const ClientOptions options_;
  v1::SubscribeRequest request_;
  std::function<bool(const v1::SubscribeResponse&)> handler_;
  absl::Mutex mu_;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status result_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // Last: starts once the rest exists.
};

}  // namespace

namespace expect {
v1::ExpectedVersion Any() {
  v1::ExpectedVersion e;
  e.mutable_any();
  return e;
}
v1::ExpectedVersion NoStream() {
  v1::ExpectedVersion e;
  e.mutable_no_stream();
  return e;
}
v1::ExpectedVersion StreamExists() {
  v1::ExpectedVersion e;
  e.mutable_stream_exists();
  return e;
}
v1::ExpectedVersion Exact(uint64_t version) {
  v1::ExpectedVersion e;
  e.set_exact(version);
  return e;
}
}  // namespace expect

std::string NewEventId() {
  uuid_t raw;
  uuid_generate_random(raw);
  char text[37];
  uuid_unparse_lower(raw, text);
  return std::string(text, 36);
}

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      channel_(grpc::CreateChannel(options_.address, grpc::InsecureChannelCredentials())),
      stub_(v1::EventStore::NewStub(channel_)) {}

absl::StatusOr<v1::AppendResponse> Client::Append(const std::string& stream,
                                                  const v1::ExpectedVersion& expected,
                                                  std::vector<v1::EventData> events) {
  v1::AppendRequest request;
  request.set_stream_id(stream);
  *request.mutable_expected_version() = expected;
  for (auto& e : events) {
    if (e.event_id().empty()) e.set_event_id(NewEventId());
    *request.add_events() = std::move(e);
  }
  absl::Duration backoff = options_.initial_backoff;
  grpc::Status status;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.call_timeout);
    v1::AppendResponse response;
    status = stub_->Append(&ctx, request, &response);
    if (status.ok()) return response;
    if (!Retryable(status.error_code()) || attempt >= options_.max_attempts) break;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return FromGrpc(status);
}

absl::StatusOr<std::vector<v1::RecordedEvent>> Client::ReadStream(
    const v1::ReadStreamRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  return ReadAllOf<v1::ReadStreamRequest>(stub_->ReadStream(&ctx, request));
}

absl::StatusOr<std::vector<v1::RecordedEvent>> Client::ReadAll(const v1::ReadAllRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  return ReadAllOf<v1::ReadAllRequest>(stub_->ReadAll(&ctx, request));
}

absl::StatusOr<v1::StreamInfo> Client::GetStream(const std::string& stream) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  v1::GetStreamRequest request;
  request.set_stream_id(stream);
  v1::StreamInfo info;
  grpc::Status status = stub_->GetStream(&ctx, request, &info);
  if (!status.ok()) return FromGrpc(status);
  return info;
}

std::unique_ptr<Subscription> Client::Subscribe(
    v1::SubscribeRequest request, std::function<bool(const v1::SubscribeResponse&)> handler) {
  return std::make_unique<ResumingSubscription>(*stub_, options_, std::move(request),
                                                std::move(handler));
}

}  // namespace logbook
