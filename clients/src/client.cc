#include "logbook/client/client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "logbook/store/uuid.h"

namespace logbook {
namespace {

// The trailer (and absl::Status payload) with the actual version on ABORTED.
constexpr char kActualVersionTrailer[] = "logbook-actual-version";

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

// One attempt's deadline, and the token.
void Prepare(grpc::ClientContext& ctx, const ClientOptions& options) {
  SetDeadline(ctx, options.call_timeout);
  AddCallMetadata(ctx, options);
}

template <typename Request>
absl::StatusOr<std::vector<v1::RecordedEvent>> ReadAllOf(
    std::unique_ptr<grpc::ClientReader<v1::ReadResponse>> reader) {
  std::vector<v1::RecordedEvent> events;
  v1::ReadResponse response;
  while (reader->Read(&response)) {
    if (response.has_events()) {
      for (v1::RecordedEvent& e : *response.mutable_events()->mutable_events()) {
        events.push_back(std::move(e));
      }
    } else {
      events.push_back(std::move(*response.mutable_event()));
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpc(status);
  return events;
}

// Events per message a read or a subscription asks for when its caller did
// not say.
constexpr uint32_t kDefaultEventsPerMessage = 500;

template <typename Request>
Request WithBatches(Request request) {
  if (!request.has_max_events_per_message()) {
    request.set_max_events_per_message(kDefaultEventsPerMessage);
  }
  return request;
}

class ResumingSubscription final : public Subscription {
 public:
  ResumingSubscription(v1::EventStore::Stub& stub, const ClientOptions& options,
                       v1::SubscribeRequest request,
                       std::function<bool(const v1::SubscribeResponse&)> handler)
      : stub_(stub),
        options_(options),
        unpack_(!request.has_max_events_per_message()),
        request_(WithBatches(std::move(request))),
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
  // Hands `response` to the handler (one message per event when unpacking
  // batches) and moves the resume point past what it was given. False when
  // the handler asked to stop.
  bool Deliver(v1::SubscribeResponse& response, v1::SubscribeResponse& single) {
    uint64_t position = 0;
    switch (response.content_case()) {
      case v1::SubscribeResponse::kEvent:
        position = response.event().global_position();
        break;
      case v1::SubscribeResponse::kEvents:
        if (unpack_) {
          for (v1::RecordedEvent& e : *response.mutable_events()->mutable_events()) {
            single.mutable_event()->Swap(&e);
            if (!handler_(single)) return false;
            request_.set_after_position(single.event().global_position());
          }
          return true;
        }
        if (response.events().events_size() > 0) {
          position = response.events().events().rbegin()->global_position();
        }
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
    if (!handler_(response)) return false;
    if (position > 0) request_.set_after_position(position);  // Resume after it.
    return true;
  }

  void Run() {
    absl::Duration backoff = options_.initial_backoff;
    absl::Status result;
    v1::SubscribeResponse single;  // One unpacked event at a time.
    for (;;) {
      grpc::ClientContext ctx;
      // A subscription outlives outages: wait for the server to be reachable
      // instead of failing fast while the channel reconnects.
      ctx.set_wait_for_ready(true);
      AddCallMetadata(ctx, options_);
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
        if (!Deliver(response, single)) {
          handler_done = true;
          ctx.TryCancel();
          break;
        }
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
  const bool unpack_;  // The caller left max_events_per_message unset: one event per call.
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

std::optional<uint64_t> ActualVersion(const absl::Status& status) {
  if (!absl::IsAborted(status)) return std::nullopt;
  auto payload = status.GetPayload(kActualVersionTrailer);
  uint64_t version = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &version)) return std::nullopt;
  return version;
}

std::string NewEventId() { return store::NewUuid(); }

void AddCallMetadata(grpc::ClientContext& ctx, const ClientOptions& options) {
  if (!options.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options.token);
  if (!options.tenant.empty()) ctx.AddMetadata("logbook-tenant", options.tenant);
}

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& what, const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read '", path, "'"));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<ClientTls> LoadClientTls(const std::string& ca_file, const std::string& cert_file,
                                        const std::string& key_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS: a client certificate and its key go together (--tls-cert and --tls-key)");
  }
  ClientTls tls;
  tls.enabled = true;
  auto ca = ReadPem("TLS CA", ca_file);
  if (!ca.ok()) return ca.status();
  auto cert = ReadPem("TLS certificate", cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadPem("TLS key", key_file);
  if (!key.ok()) return key.status();
  tls.root_certs = *std::move(ca);
  tls.cert_chain = *std::move(cert);
  tls.private_key = *std::move(key);
  return tls;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ClientTls& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.root_certs;
  options.pem_cert_chain = tls.cert_chain;
  options.pem_private_key = tls.private_key;
  return grpc::SslCredentials(options);
}

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      channel_(grpc::CreateChannel(options_.address, ChannelCredentials(options_.tls))),
      stub_(v1::EventStore::NewStub(channel_)) {}

namespace {

v1::AppendRequest MakeAppendRequest(const std::string& stream, const v1::ExpectedVersion& expected,
                                    std::vector<v1::EventData> events) {
  v1::AppendRequest request;
  request.set_stream_id(stream);
  *request.mutable_expected_version() = expected;
  for (auto& e : events) {
    if (e.event_id().empty()) e.set_event_id(NewEventId());
    *request.add_events() = std::move(e);
  }
  return request;
}

// A failed append's status; ABORTED carries the actual-version trailer.
absl::Status AppendError(const grpc::Status& status, const grpc::ClientContext& ctx) {
  absl::Status error = FromGrpc(status);
  if (status.error_code() == grpc::StatusCode::ABORTED) {
    const auto& trailers = ctx.GetServerTrailingMetadata();
    if (auto it = trailers.find(kActualVersionTrailer); it != trailers.end()) {
      error.SetPayload(kActualVersionTrailer,
                       absl::Cord(absl::string_view(it->second.data(), it->second.size())));
    }
  }
  return error;
}

}  // namespace

absl::StatusOr<v1::AppendResponse> Client::Append(const std::string& stream,
                                                  const v1::ExpectedVersion& expected,
                                                  std::vector<v1::EventData> events,
                                                  const AppendOptions& options) {
  const v1::AppendRequest request = MakeAppendRequest(stream, expected, std::move(events));
  absl::Duration backoff = options_.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    Prepare(ctx, options_);
    if (!options.traceparent.empty()) ctx.AddMetadata("traceparent", options.traceparent);
    v1::AppendResponse response;
    const grpc::Status status = stub_->Append(&ctx, request, &response);
    if (status.ok()) return response;
    if (!Retryable(status.error_code()) || attempt >= options_.max_attempts) {
      return AppendError(status, ctx);
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void Client::AppendAsync(const std::string& stream, const v1::ExpectedVersion& expected,
                         std::vector<v1::EventData> events,
                         std::function<void(absl::StatusOr<v1::AppendResponse>)> done) {
  struct Call {
    grpc::ClientContext ctx;
    v1::AppendRequest request;
    v1::AppendResponse response;
    std::function<void(absl::StatusOr<v1::AppendResponse>)> done;
  };
  auto* call = new Call;
  call->request = MakeAppendRequest(stream, expected, std::move(events));
  call->done = std::move(done);
  Prepare(call->ctx, options_);
  stub_->async()->Append(&call->ctx, &call->request, &call->response,
                         [call](grpc::Status status) {
                           std::unique_ptr<Call> owned(call);
                           if (status.ok()) {
                             owned->done(std::move(owned->response));
                           } else {
                             owned->done(AppendError(status, owned->ctx));
                           }
                         });
}

absl::StatusOr<std::vector<v1::RecordedEvent>> Client::ReadStream(
    const v1::ReadStreamRequest& request) {
  grpc::ClientContext ctx;
  Prepare(ctx, options_);
  return ReadAllOf<v1::ReadStreamRequest>(stub_->ReadStream(&ctx, WithBatches(request)));
}

absl::StatusOr<std::vector<v1::RecordedEvent>> Client::ReadAll(const v1::ReadAllRequest& request) {
  grpc::ClientContext ctx;
  Prepare(ctx, options_);
  return ReadAllOf<v1::ReadAllRequest>(stub_->ReadAll(&ctx, WithBatches(request)));
}

absl::StatusOr<v1::StreamInfo> Client::GetStream(const std::string& stream) {
  grpc::ClientContext ctx;
  Prepare(ctx, options_);
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

namespace {

// Events per ReadStream call of Load.
constexpr uint64_t kLoadPage = 1000;

void SetTimestamp(absl::Time time, google::protobuf::Timestamp& out) {
  const int64_t seconds = absl::ToUnixSeconds(time);  // Rounds down.
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) /
                                     absl::Nanoseconds(1)));
}

}  // namespace

absl::StatusOr<Loaded> Client::Load(const std::string& stream, const LoadOptions& options) {
  std::optional<uint64_t> point = options.until_version;
  if (options.until_time) {
    v1::ReadStreamRequest newest;
    newest.set_stream_id(stream);
    newest.set_direction(v1::BACKWARD);
    newest.set_max_count(1);
    if (point) newest.set_until_version(*point);
    SetTimestamp(*options.until_time, *newest.mutable_until_time());
    absl::StatusOr<std::vector<v1::RecordedEvent>> last = ReadStream(newest);
    if (!last.ok()) return last.status();
    if (last->empty()) {
      return absl::NotFoundError("stream '" + stream + "' has no events recorded at or before " +
                                 absl::FormatTime(absl::RFC3339_full, *options.until_time,
                                                  absl::UTCTimeZone()));
    }
    point = last->front().stream_version();
  }

  Loaded loaded;
  v1::LoadSnapshotRequest snapshot_request;
  snapshot_request.set_stream_id(stream);
  if (point) snapshot_request.set_max_version(*point);
  if (options.schema_version) snapshot_request.set_schema_version(*options.schema_version);
  absl::StatusOr<v1::Snapshot> snapshot = LoadSnapshot(snapshot_request);
  if (snapshot.ok()) {
    loaded.snapshot = *std::move(snapshot);
  } else if (snapshot.status().code() != absl::StatusCode::kNotFound) {
    return snapshot.status();
  }

  v1::ReadStreamRequest read;
  read.set_stream_id(stream);
  if (loaded.snapshot) read.set_from_version(loaded.snapshot->stream_version() + 1);
  if (point) read.set_until_version(*point);
  read.set_max_count(kLoadPage);
  for (;;) {
    absl::StatusOr<std::vector<v1::RecordedEvent>> page = ReadStream(read);
    if (!page.ok()) return page.status();
    const bool last_page = page->size() < kLoadPage;
    if (!page->empty()) read.set_from_version(page->back().stream_version() + 1);
    loaded.events.insert(loaded.events.end(), std::make_move_iterator(page->begin()),
                         std::make_move_iterator(page->end()));
    if (last_page) break;
  }
  return loaded;
}

absl::StatusOr<v1::DeleteStreamResponse> Client::DeleteStream(const std::string& stream,
                                                              const v1::ExpectedVersion& expected,
                                                              bool tombstone) {
  grpc::ClientContext ctx;
  Prepare(ctx, options_);
  v1::DeleteStreamRequest request;
  request.set_stream_id(stream);
  *request.mutable_expected_version() = expected;
  request.set_tombstone(tombstone);
  v1::DeleteStreamResponse response;
  grpc::Status status = stub_->DeleteStream(&ctx, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return response;
}

absl::StatusOr<v1::RedactEventResponse> Client::RedactEvent(const std::string& stream,
                                                            uint64_t version,
                                                            const std::string& reason,
                                                            const std::string& admin_token) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.call_timeout);
  if (admin_token.empty()) {
    AddCallMetadata(ctx, options_);
  } else {
    ctx.AddMetadata("authorization", "Bearer " + admin_token);
    if (!options_.tenant.empty()) ctx.AddMetadata("logbook-tenant", options_.tenant);
  }
  v1::RedactEventRequest request;
  request.set_stream_id(stream);
  request.set_stream_version(version);
  request.set_reason(reason);
  v1::RedactEventResponse response;
  grpc::Status status = stub_->RedactEvent(&ctx, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return response;
}

absl::StatusOr<v1::SaveSnapshotResponse> Client::SaveSnapshot(const std::string& stream,
                                                              uint64_t version,
                                                              uint32_t schema_version,
                                                              std::string state) {
  grpc::ClientContext ctx;
  Prepare(ctx, options_);
  v1::SaveSnapshotRequest request;
  request.set_stream_id(stream);
  request.set_stream_version(version);
  request.set_schema_version(schema_version);
  request.set_state(std::move(state));
  v1::SaveSnapshotResponse response;
  grpc::Status status = stub_->SaveSnapshot(&ctx, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return response;
}

absl::StatusOr<v1::Snapshot> Client::LoadSnapshot(const v1::LoadSnapshotRequest& request) {
  grpc::ClientContext ctx;
  Prepare(ctx, options_);
  v1::Snapshot snapshot;
  grpc::Status status = stub_->LoadSnapshot(&ctx, request, &snapshot);
  if (!status.ok()) return FromGrpc(status);
  return snapshot;
}

absl::StatusOr<v1::VerifyResult> Client::Verify(
    const v1::VerifyRequest& request,
    const std::function<void(const v1::VerifyProgress&)>& on_progress) {
  grpc::ClientContext ctx;
  AddCallMetadata(ctx, options_);
  auto reader = stub_->Verify(&ctx, request);
  v1::VerifyResponse response;
  std::optional<v1::VerifyResult> result;
  while (reader->Read(&response)) {
    if (response.has_progress() && on_progress) on_progress(response.progress());
    if (response.has_result()) result = std::move(*response.mutable_result());
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpc(status);
  if (!result) return absl::InternalError("Verify: the server ended without a result");
  return *std::move(result);
}

namespace {

// One attempt of a unary RPC with the call timeout.
template <typename Request, typename Response>
absl::StatusOr<Response> Unary(
    v1::EventStore::Stub& stub, const ClientOptions& options,
    grpc::Status (v1::EventStore::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request) {
  grpc::ClientContext ctx;
  Prepare(ctx, options);
  Response response;
  grpc::Status status = (stub.*method)(&ctx, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return response;
}

}  // namespace

absl::StatusOr<v1::ConsumerGroupInfo> Client::CreateConsumerGroup(
    const v1::CreateConsumerGroupRequest& request) {
  return Unary(*stub_, options_, &v1::EventStore::Stub::CreateConsumerGroup, request);
}

absl::StatusOr<v1::ConsumerGroupInfo> Client::UpdateConsumerGroup(
    const std::string& group, const v1::ConsumerGroupSettings& settings) {
  v1::UpdateConsumerGroupRequest request;
  request.set_group(group);
  *request.mutable_settings() = settings;
  return Unary(*stub_, options_, &v1::EventStore::Stub::UpdateConsumerGroup, request);
}

absl::Status Client::DeleteConsumerGroup(const std::string& group) {
  v1::DeleteConsumerGroupRequest request;
  request.set_group(group);
  return Unary(*stub_, options_, &v1::EventStore::Stub::DeleteConsumerGroup, request).status();
}

absl::StatusOr<std::vector<v1::ConsumerGroupInfo>> Client::ListConsumerGroups() {
  auto response = Unary(*stub_, options_, &v1::EventStore::Stub::ListConsumerGroups,
                        v1::ListConsumerGroupsRequest());
  if (!response.ok()) return response.status();
  return std::vector<v1::ConsumerGroupInfo>(
      std::make_move_iterator(response->mutable_groups()->begin()),
      std::make_move_iterator(response->mutable_groups()->end()));
}

absl::StatusOr<v1::ConsumerGroupInfo> Client::GetConsumerGroup(const std::string& group) {
  v1::GetConsumerGroupRequest request;
  request.set_group(group);
  return Unary(*stub_, options_, &v1::EventStore::Stub::GetConsumerGroup, request);
}

absl::StatusOr<v1::ListParkedResponse> Client::ListParked(const std::string& group,
                                                          uint64_t after, uint32_t max_count) {
  v1::ListParkedRequest request;
  request.set_group(group);
  request.set_after(after);
  request.set_max_count(max_count);
  return Unary(*stub_, options_, &v1::EventStore::Stub::ListParked, request);
}

absl::StatusOr<uint64_t> Client::ReplayParked(const v1::ParkedSelection& selection) {
  v1::ReplayParkedRequest request;
  *request.mutable_selection() = selection;
  auto response = Unary(*stub_, options_, &v1::EventStore::Stub::ReplayParked, request);
  if (!response.ok()) return response.status();
  return response->replayed();
}

absl::StatusOr<uint64_t> Client::DropParked(const v1::ParkedSelection& selection) {
  v1::DropParkedRequest request;
  *request.mutable_selection() = selection;
  auto response = Unary(*stub_, options_, &v1::EventStore::Stub::DropParked, request);
  if (!response.ok()) return response.status();
  return response->dropped();
}

}  // namespace logbook
