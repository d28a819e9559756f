#include "logbook/service/event_store_service.h"

#include <algorithm>
#include <deque>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth.h"
#include "auth_limiter.h"
#include "metrics.h"
#include "quotas.h"
#include "read_router.h"
#include "consume_reactor.h"
#include "consumer_group_hub.h"
#include "convert.h"
#include "group_convert.h"
#include "logbook/store/status_macros.h"
#include "spdlog/spdlog.h"
#include "subscribe_reactor.h"

namespace logbook::service {
namespace {

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE,
                                 "server shutting down; retry on another instance");
const grpc::Status kOverloaded(grpc::StatusCode::UNAVAILABLE,
                               "server overloaded: too many calls waiting for the database; "
                               "retry with backoff");

// The most events a read sends in one message (max_events_per_message).
constexpr uint32_t kMaxEventsPerReadMessage = 1000;

// Streams the result of a paged read: fetches a page (up to kPageSize events
// and kPageBytes of data + metadata, plus the event that crosses it) on a
// worker, writes it a message at a time (one write in flight; a message is
// one event, or up to per_message of them and kPageBytes of data), fetches
// the next page from OnWriteDone, and finishes when `total` events were sent
// or a page came back short of both bounds. Deletes itself in OnDone. At
// most one of {fetch, write} is in flight, so the reactor is never touched by
// two threads at once, and a call holds one page and the message being
// written. (Fetching the next page while writing measured no faster: the
// fetch, a query and its conversion, is what takes the time.)
class PagedReadReactor final : public grpc::ServerWriteReactor<v1::ReadResponse> {
 public:
  using FetchPage = EventStoreService::FetchPage;

  PagedReadReactor(WorkerPool& workers, uint64_t total, uint32_t per_message, FetchPage fetch,
                   std::function<void()> on_done)
      : workers_(workers),
        remaining_(total),
        per_message_(std::max<uint32_t>(1, per_message)),
        fetch_(std::move(fetch)),
        on_done_(std::move(on_done)) {
    StartFetch();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    WriteNextOrFetch();
  }

  void OnDone() override {
    on_done_();
    delete this;
  }

 private:
  static constexpr uint64_t kPageSize = 500;
  static constexpr size_t kPageBytes = 512 << 10;

  void StartFetch() {
    const uint64_t want = std::min(remaining_, kPageSize);
    if (!workers_.TrySubmit([this, want] {
          absl::StatusOr<std::vector<store::RecordedEvent>> page = fetch_(want, kPageBytes);
          if (!page.ok()) {
            Finish(ToGrpcStatus(page.status()));
            return;
          }
          size_t bytes = 0;
          for (const auto& e : *page) bytes += e.data.size() + e.metadata.size();
          last_page_ = page->size() < want && bytes < kPageBytes;
          remaining_ -= page->size();
          page_.assign(std::make_move_iterator(page->begin()), std::make_move_iterator(page->end()));
          WriteNextOrFetch();
        })) {
      Finish(kOverloaded);
    }
  }

  void WriteNextOrFetch() {
    if (!page_.empty()) {
      response_.Clear();
      if (per_message_ == 1) {
        ToProto(page_.front(), *response_.mutable_event());
        page_.pop_front();
      } else {
        v1::EventBatch& batch = *response_.mutable_events();
        for (size_t bytes = 0;
             !page_.empty() && batch.events_size() < static_cast<int>(per_message_) &&
             bytes < kPageBytes;
             page_.pop_front()) {
          bytes += page_.front().data.size() + page_.front().metadata.size();
          ToProto(page_.front(), *batch.add_events());
        }
      }
      StartWrite(&response_);
    } else if (remaining_ == 0 || last_page_) {
      Finish(grpc::Status::OK);
    } else {
      StartFetch();
    }
  }

  WorkerPool& workers_;
  uint64_t remaining_;
  const uint32_t per_message_;
  FetchPage fetch_;
  std::function<void()> on_done_;
  std::deque<store::RecordedEvent> page_;
  bool last_page_ = false;
  v1::ReadResponse response_;
};

// Fails a streaming call before it started.
template <typename Response = v1::ReadResponse>
class FailedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { this->Finish(status); }
  explicit FailedWriteReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

// Streams a verification: runs one Step on a worker, writes its progress
// (one write in flight), starts the next Step from OnWriteDone, and ends with
// the result. Deletes itself in OnDone. At most one of {step, write} is in
// flight, so the reactor is never touched by two threads at once.
class VerifyReactor final : public grpc::ServerWriteReactor<v1::VerifyResponse> {
 public:
  // Events checked per Step, and so per progress message.
  static constexpr size_t kStepEvents = 10000;

  // `on_done` gets the outcome: "intact", "broken" or "failed" (no result
  // sent).
  // `pick` names the store to verify in (it may query: called on a worker).
  VerifyReactor(std::function<store::EventStore&()> pick, WorkerPool& workers,
                std::string stream_id, std::string tenant,
                std::function<void(absl::string_view outcome)> on_done)
      : workers_(workers), on_done_(std::move(on_done)) {
    Submit([this, pick = std::move(pick), stream_id = std::move(stream_id),
            tenant = std::move(tenant)] {
      absl::StatusOr<std::unique_ptr<store::Verification>> started =
          pick().StartVerify(stream_id, tenant);
      if (!started.ok()) {
        Finish(ToGrpcStatus(started.status()));
        return;
      }
      verification_ = *std::move(started);
      RunStep();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    } else if (finished_) {
      response_.Clear();
      ToProto(verification_->report(), *response_.mutable_result());
      outcome_ = verification_->report().first_broken ? "broken" : "intact";
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      Submit([this] { RunStep(); });
    }
  }

  void OnDone() override {
    on_done_(outcome_);
    delete this;
  }

 private:
  void Submit(std::function<void()> task) {
    if (!workers_.TrySubmit(std::move(task))) Finish(kOverloaded);
  }

  // On a worker: checks the next events and writes the progress.
  void RunStep() {
    absl::StatusOr<bool> finished = verification_->Step(kStepEvents);
    if (!finished.ok()) {
      Finish(ToGrpcStatus(finished.status()));
      return;
    }
    finished_ = *finished;
    response_.Clear();
    ToProto(verification_->report(), *response_.mutable_progress());
    StartWrite(&response_);
  }

  WorkerPool& workers_;
  std::function<void(absl::string_view)> on_done_;
  const char* outcome_ = "failed";
  std::unique_ptr<store::Verification> verification_;
  bool finished_ = false;
  v1::VerifyResponse response_;
};

// The names a client certificate gives its holder: its common name, then
// its subject alternative names (gRPC's auth context of an mTLS call).
std::vector<std::string> CertificateNames(const grpc::CallbackServerContext& context) {
  std::vector<std::string> names;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return names;
  for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      names.emplace_back(value.data(), value.size());
    }
  }
  return names;
}

// Narrows a subscription of a category or of $all to the scopes of
// `caller` (NarrowToScopes), in place; a stream's needs a scope covering it.
absl::Status NarrowSubscription(const Principal& caller, v1::SubscribeRequest& request,
                                std::vector<std::string>& scopes) {
  if (caller.scopes.empty()) return absl::OkStatus();
  if (request.has_stream_id()) return RequireStreamScope(caller, "stream_id", request.stream_id());
  store::EventFilter filter = FromProto(request.filter());
  if (request.has_category()) filter.category = request.category();
  LOGBOOK_ASSIGN_OR_RETURN(store::EventFilter narrowed, NarrowToScopes(caller, filter));
  request.mutable_filter()->set_stream_prefix(narrowed.stream_prefix);
  if (!request.has_category()) request.mutable_filter()->set_category(narrowed.category);
  scopes = std::move(narrowed.scopes);
  return absl::OkStatus();
}

// The data and metadata bytes of an append's events.
uint64_t AppendedBytes(const v1::AppendRequest& request) {
  uint64_t bytes = 0;
  for (const v1::EventData& e : request.events()) bytes += e.data().size() + e.metadata().size();
  return bytes;
}

// Appends up to this size are validated on the gRPC thread (see Append).
constexpr size_t kInlineAppendBytes = 64 << 10;

uint64_t ReadTotal(const store::Limits& limits, uint64_t max_count) {
  return max_count == 0 ? limits.default_read_count : max_count;
}

}  // namespace

EventStoreService::EventStoreService(store::EventStore& store, WorkerPool& workers,
                                     store::LogTail& tail, store::ConsumerGroups& groups,
                                     ConsumerGroupHub& hub, const Authenticator& auth,
                                     Metrics& metrics, size_t max_subscriptions_per_connection,
                                     int auth_failures_per_minute, ReadRouter* reads)
    : store_(store),
      workers_(workers),
      tail_(tail),
      groups_(groups),
      hub_(hub),
      auth_(auth),
      metrics_(metrics),
      auth_limiter_(std::make_unique<AuthLimiter>(auth_failures_per_minute)),
      quotas_(std::make_unique<QuotaBook>()),
      own_reads_(reads != nullptr
                     ? nullptr
                     : std::make_unique<ReadRouter>(store, std::vector<store::EventStore*>{},
                                                    metrics)),
      reads_(reads != nullptr ? reads : own_reads_.get()),
      max_subscriptions_per_connection_(max_subscriptions_per_connection),
      tenant_isolation_(store.CheckTenantIsolation()) {
  if (!tenant_isolation_.ok()) {
    spdlog::warn("callers of tenants other than 'default' are refused: {}",
                 std::string(tenant_isolation_.message()));
  }
}

EventStoreService::~EventStoreService() = default;

bool EventStoreService::BeginCall() {
  ++in_flight_;
  if (!draining_) return true;
  --in_flight_;
  return false;
}

grpc::ServerUnaryReactor* EventStoreService::RunUnary(grpc::CallbackServerContext* context,
                                                       const google::protobuf::Message& request,
                                                       std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!BeginCall()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  if (absl::Status valid = RejectUnknownEnumValues(request); !valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    EndCall();
    return reactor;
  }
  if (!workers_.TrySubmit([this, context, reactor, work = std::move(work)] {
        absl::Status status = work();
        AddStatusTrailers(status, *context);
        reactor->Finish(ToGrpcStatus(status));
        EndCall();
      })) {
    reactor->Finish(kOverloaded);
    EndCall();
  }
  return reactor;
}

namespace {

// The gRPC metadata key of the W3C trace context an Append stores with its
// events (docs/api.md#trace-context).
constexpr char kTraceparentKey[] = "traceparent";

// The W3C traceparent the call carries in its metadata (kTraceparentKey), or
// "" without one; INVALID_ARGUMENT for a malformed one, or two.
absl::StatusOr<std::string> TraceparentOf(const grpc::CallbackServerContext& context) {
  const auto [first, last] = context.client_metadata().equal_range(kTraceparentKey);
  if (first == last) return std::string();
  if (std::next(first) != last) {
    return absl::InvalidArgumentError(
        absl::StrCat(kTraceparentKey, " metadata: sent more than once"));
  }
  const absl::string_view value(first->second.data(), first->second.size());
  LOGBOOK_RETURN_IF_ERROR(
      store::ValidateTraceparent(absl::StrCat(kTraceparentKey, " metadata"), value));
  return std::string(value);
}

}  // namespace

absl::StatusOr<Principal> EventStoreService::Caller(const grpc::CallbackServerContext& context,
                                                     uint32_t any_of, const char* call,
                                                     std::optional<absl::string_view> stream_id) {
  const auto& metadata = context.client_metadata();
  std::optional<absl::string_view> header;
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    header = absl::string_view(it->second.data(), it->second.size());
  }
  std::vector<std::string> cert_names = CertificateNames(context);
  const bool anonymous = !header && cert_names.empty();
  std::string source;
  const absl::Time now = absl::Now();
  if (!anonymous) {
    source = PeerAddress(context.peer());
    if (absl::Status allowed = auth_limiter_->Check(source, now); !allowed.ok()) {
      metrics_.CountAuthFailure();
      return allowed;
    }
  }
  absl::StatusOr<Principal> caller = auth_.Authenticate(header, cert_names);
  if (!caller.ok()) {
    if (source.empty()) source = PeerAddress(context.peer());
    spdlog::warn("{} from {} refused: {}", call, source, std::string(caller.status().message()));
    metrics_.CountAuthFailure();
    if (!anonymous && auth_limiter_->Failed(source, now)) {
      spdlog::warn("calls from {} are refused for a minute: too many failed authentications",
                   source);
    }
    return caller.status();
  }
  absl::Status allowed = RequireRole(*caller, any_of, call);
  if (allowed.ok() && stream_id) allowed = RequireStreamScope(*caller, "stream_id", *stream_id);
  if (allowed.ok()) {
    // From here on the principal acts in the call's tenant.
    std::optional<absl::string_view> requested;
    if (auto it = metadata.find(kTenantKey); it != metadata.end()) {
      requested = absl::string_view(it->second.data(), it->second.size());
    }
    absl::StatusOr<std::string> tenant = CallTenant(*caller, requested);
    allowed = tenant.status();
    if (tenant.ok() && *tenant != store::kDefaultTenant && !tenant_isolation_.ok()) {
      allowed = absl::FailedPreconditionError(
          absl::StrCat("tenant '", *tenant, "': ", tenant_isolation_.message()));
    }
    if (tenant.ok()) caller->tenant = *std::move(tenant);
  }
  if (!allowed.ok()) {
    spdlog::info("{} by {} refused: {}", call, caller->name, std::string(allowed.message()));
    return allowed;
  }
  return caller;
}

absl::Status EventStoreService::CheckGroupScope(const Principal& caller,
                                                const std::string& group) {
  if (caller.scopes.empty()) return absl::OkStatus();
  absl::StatusOr<store::GroupInfo> info = groups_.Get(group);
  if (absl::IsNotFound(info.status())) return absl::OkStatus();  // The call says so.
  if (!info.ok()) return info.status();
  return RequireWithinScopes(caller, absl::StrCat("group '", group, "'"),
                             info->definition.target);
}

grpc::ServerUnaryReactor* EventStoreService::Refuse(grpc::CallbackServerContext* context,
                                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* EventStoreService::Append(grpc::CallbackServerContext* context,
                                                    const v1::AppendRequest* request,
                                                    v1::AppendResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kWriter, "Append", request->stream_id());
  if (!caller.ok()) return Refuse(context, caller.status());
  absl::StatusOr<std::string> traceparent = TraceparentOf(*context);
  if (!traceparent.ok()) return Refuse(context, traceparent.status());
  if (absl::Status s = quotas_->Take(QuotaKind::kAppendsInFlight, *caller); !s.ok()) {
    metrics_.CountQuotaRefusal(QuotaKind::kAppendsInFlight);
    return Refuse(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto end = [this, principal = caller->name] {
    quotas_->Give(QuotaKind::kAppendsInFlight, principal);
    EndCall();
  };
  if (!BeginCall()) {
    quotas_->Give(QuotaKind::kAppendsInFlight, caller->name);
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  // Converting and validating is all that happens here: the store commits
  // the append with others and calls back from its own thread. A small
  // request is handled right on this gRPC thread (microseconds of CPU, a
  // thread hop saved); a large one's JSON checks go to a worker.
  auto submit = [this, context, request, response, reactor, writer = AsWriter(*caller), end,
                 traceparent = *std::move(traceparent)] {
    std::vector<store::NewEvent> events = FromProto(request->events());
    if (!traceparent.empty()) {
      for (store::NewEvent& e : events) e.traceparent = traceparent;
    }
    store_.AppendAsync(
        request->stream_id(), FromProto(request->expected_version()), std::move(events), writer,
        [this, context, response, reactor, end,
         bytes = AppendedBytes(*request)](absl::StatusOr<store::AppendResult> result) {
          if (result.ok()) {
            if (!result->duplicate) metrics_.CountAppended(result->event_ids.size(), bytes);
            // Wake this instance's subscriptions and consumer groups now;
            // other instances hear of it through NOTIFY.
            tail_.OnHead(result->last_position);
            if (!result->duplicate) hub_.WakeAll();
            ToProto(*std::move(result), *response);
          } else {
            AddStatusTrailers(result.status(), *context);
          }
          reactor->Finish(ToGrpcStatus(result.status()));
          end();
        });
  };
  if (request->ByteSizeLong() <= kInlineAppendBytes) {
    submit();
  } else if (!workers_.TrySubmit(std::move(submit))) {
    reactor->Finish(kOverloaded);
    end();
  }
  return reactor;
}

grpc::ServerUnaryReactor* EventStoreService::Checkpoint(grpc::CallbackServerContext* context,
                                                        const v1::CheckpointRequest* request,
                                                        v1::SignedCheckpoint* response) {
  absl::StatusOr<Principal> caller =
      Caller(*context, request->create() ? kOperator : kReader, "Checkpoint");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response]() -> absl::Status {
    LOGBOOK_ASSIGN_OR_RETURN(store::Checkpoint checkpoint,
                             request->create() ? store_.CreateCheckpoint()
                                               : store_.LatestCheckpoint());
    ToProto(checkpoint, *response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::GetStream(grpc::CallbackServerContext* context,
                                                       const v1::GetStreamRequest* request,
                                                       v1::StreamInfo* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "GetStream", request->stream_id());
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, request, response, tenant = caller->tenant]() -> absl::Status {
    LOGBOOK_ASSIGN_OR_RETURN(store::StreamInfo info,
                             reads_->For(tail_.head()).GetStream(request->stream_id(), tenant));
    ToProto(info, *response);
    return absl::OkStatus();
  });
}

namespace {
template <typename Request>
store::ListQuery ListQueryOf(const Request& request, const Principal& caller) {
  return {request.prefix(), request.after(), request.max_count(), caller.scopes, caller.tenant};
}
}  // namespace

grpc::ServerUnaryReactor* EventStoreService::ListStreams(grpc::CallbackServerContext* context,
                                                         const v1::ListStreamsRequest* request,
                                                         v1::ListStreamsResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "ListStreams");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, response, query = ListQueryOf(*request, *caller)]() -> absl::Status {
                    LOGBOOK_ASSIGN_OR_RETURN(std::vector<store::StreamInfo> streams,
                                             reads_->For(tail_.head()).ListStreams(query));
                    for (const store::StreamInfo& info : streams)
                      ToProto(info, *response->add_streams());
                    const uint64_t page =
                        query.max_count ? query.max_count : store::kDefaultListCount;
                    if (!streams.empty() && streams.size() == page)
                      response->set_next_after(streams.back().stream_id);
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* EventStoreService::ListCategories(
    grpc::CallbackServerContext* context, const v1::ListCategoriesRequest* request,
    v1::ListCategoriesResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "ListCategories");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, response, query = ListQueryOf(*request, *caller)]() -> absl::Status {
                    LOGBOOK_ASSIGN_OR_RETURN(std::vector<std::string> categories,
                                             reads_->For(tail_.head()).ListCategories(query));
                    const uint64_t page =
                        query.max_count ? query.max_count : store::kDefaultListCount;
                    if (!categories.empty() && categories.size() == page) {
                      response->set_next_after(categories.back());
                    }
                    for (std::string& c : categories) response->add_categories(std::move(c));
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* EventStoreService::DeleteStream(
    grpc::CallbackServerContext* context, const v1::DeleteStreamRequest* request,
    v1::DeleteStreamResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "DeleteStream", request->stream_id());
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, request, response, writer = AsWriter(*caller)]() -> absl::Status {
    LOGBOOK_ASSIGN_OR_RETURN(store::DeleteResult result,
                     store_.DeleteStream(request->stream_id(),
                                         FromProto(request->expected_version()),
                                         request->tombstone(), writer));
    tail_.OnHead(result.audit_position);  // The StreamDeleted event in $audit.
    ToProto(result, *response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::RedactEvent(grpc::CallbackServerContext* context,
                                                         const v1::RedactEventRequest* request,
                                                         v1::RedactEventResponse* response) {
  absl::StatusOr<Principal> caller =
      Caller(*context, kAdmin, "RedactEvent", request->stream_id());
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, request, response, writer = AsWriter(*caller)]() -> absl::Status {
    LOGBOOK_ASSIGN_OR_RETURN(store::RedactResult result,
                     store_.RedactEvent(request->stream_id(), request->stream_version(),
                                        request->reason(), writer));
    spdlog::info("{} redacted {}@{} (position {}); audit position {}", writer.principal,
                 request->stream_id(), request->stream_version(), result.global_position,
                 result.audit_position);
    tail_.OnHead(result.audit_position);  // The EventRedacted event in $audit.
    ToProto(result, *response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::SaveSnapshot(
    grpc::CallbackServerContext* context, const v1::SaveSnapshotRequest* request,
    v1::SaveSnapshotResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kWriter, "SaveSnapshot", request->stream_id());
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, request, response, tenant = caller->tenant]() -> absl::Status {
    store::Snapshot snapshot = FromProto(*request);
    snapshot.tenant = tenant;
    LOGBOOK_ASSIGN_OR_RETURN(store::Snapshot saved, store_.SaveSnapshot(snapshot));
    ToProto(saved.created_at, *response->mutable_created_at());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::LoadSnapshot(
    grpc::CallbackServerContext* context, const v1::LoadSnapshotRequest* request,
    v1::Snapshot* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "LoadSnapshot", request->stream_id());
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request,
                  [this, request, response, tenant = caller->tenant]() -> absl::Status {
    store::SnapshotQuery query = FromProto(*request);
    query.tenant = tenant;
    LOGBOOK_ASSIGN_OR_RETURN(store::Snapshot snapshot, store_.LoadSnapshot(query));
    ToProto(snapshot, *response);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::VerifyResponse>* EventStoreService::Verify(
    grpc::CallbackServerContext* context, const v1::VerifyRequest* request) {
  using Failed = FailedWriteReactor<v1::VerifyResponse>;
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "Verify");
  absl::Status allowed = caller.status();
  if (allowed.ok()) {
    allowed = request->has_stream_id()
                  ? RequireStreamScope(*caller, "stream_id", request->stream_id())
                  : RequireWithinScopes(*caller, "all", store::EventFilter());
  }
  if (!allowed.ok()) return new Failed(allowed);
  if (!BeginCall()) return new Failed(kShuttingDown);
  absl::Status valid = RejectUnknownEnumValues(*request);
  if (valid.ok()) {
    switch (request->target_case()) {
      case v1::VerifyRequest::kStreamId:
        // Checked here: the store reads an empty id as "the whole log".
        valid = store::ValidateStreamId(store_.limits(), "stream_id", request->stream_id());
        break;
      case v1::VerifyRequest::kAll:
        break;
      case v1::VerifyRequest::TARGET_NOT_SET:
        valid = absl::InvalidArgumentError("target: set stream_id or all");
        break;
    }
  }
  if (!valid.ok()) {
    EndCall();
    return new Failed(valid);
  }
  return new VerifyReactor([this]() -> store::EventStore& { return reads_->For(tail_.head()); },
                           workers_, request->stream_id(), caller->tenant,
                           [this](absl::string_view outcome) {
                             metrics_.CountVerification(outcome);
                             EndCall();
                           });
}

grpc::ServerWriteReactor<v1::ReadResponse>* EventStoreService::StartPagedRead(
    const google::protobuf::Message& request, const absl::Status& converted, uint64_t max_count,
    uint32_t per_message, FetchPage fetch) {
  if (!BeginCall()) return new FailedWriteReactor<>(kShuttingDown);
  absl::Status valid = RejectUnknownEnumValues(request);
  if (valid.ok()) valid = converted;
  if (valid.ok()) valid = store::ValidateReadCount(store_.limits(), max_count);
  if (valid.ok() && per_message > kMaxEventsPerReadMessage) {
    valid = absl::InvalidArgumentError(absl::StrCat("max_events_per_message: ", per_message,
                                                    " is over the limit of ",
                                                    kMaxEventsPerReadMessage));
  }
  if (!valid.ok()) {
    EndCall();
    return new FailedWriteReactor<>(valid);
  }
  return new PagedReadReactor(workers_, ReadTotal(store_.limits(), max_count), per_message,
                              std::move(fetch), [this] { EndCall(); });
}

grpc::ServerWriteReactor<v1::ReadResponse>* EventStoreService::ReadStream(
    grpc::CallbackServerContext* context, const v1::ReadStreamRequest* request) {
  absl::StatusOr<Principal> caller =
      Caller(*context, kReader, "ReadStream", request->stream_id());
  if (!caller.ok()) return new FailedWriteReactor<>(caller.status());
  absl::StatusOr<store::ReadStreamQuery> query = FromProto(*request);
  if (query.ok()) query->tenant = caller->tenant;
  // The query keeps its until_* bounds from page to page.
  return StartPagedRead(
      *request, query.status(), request->max_count(), request->max_events_per_message(),
      [this, query = query.value_or(store::ReadStreamQuery()), done = false](
          uint64_t max,
          size_t max_bytes) mutable -> absl::StatusOr<std::vector<store::RecordedEvent>> {
        if (done) return std::vector<store::RecordedEvent>{};
        query.max_count = max;
        query.max_bytes = max_bytes;
        auto page = reads_->For(tail_.head()).ReadStream(query);
        if (page.ok() && !page->empty()) {
          const uint64_t last = page->back().stream_version;
          const bool forward = query.direction == store::Direction::kForward;
          done = !forward && last == 0;
          query.from_version = forward ? last + 1 : (done ? 0 : last - 1);
        }
        return page;
      });
}

grpc::ServerWriteReactor<v1::ReadResponse>* EventStoreService::ReadAll(
    grpc::CallbackServerContext* context, const v1::ReadAllRequest* request) {
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "ReadAll");
  if (!caller.ok()) return new FailedWriteReactor<>(caller.status());
  absl::StatusOr<store::ReadAllQuery> query = FromProto(*request);
  if (query.ok()) {
    query->tenant = caller->tenant;
    // A scoped caller reads what its scopes cover, whatever it asked for.
    absl::StatusOr<store::EventFilter> narrowed = NarrowToScopes(*caller, query->filter);
    if (!narrowed.ok()) return new FailedWriteReactor<>(narrowed.status());
    query->filter = *std::move(narrowed);
  }
  return StartPagedRead(
      *request, query.status(), request->max_count(), request->max_events_per_message(),
      [this, query = query.value_or(store::ReadAllQuery()), done = false](
          uint64_t max,
          size_t max_bytes) mutable -> absl::StatusOr<std::vector<store::RecordedEvent>> {
        if (done) return std::vector<store::RecordedEvent>{};
        query.max_count = max;
        query.max_bytes = max_bytes;
        auto page = reads_->For(tail_.head()).ReadAll(query);
        if (page.ok() && !page->empty()) {
          const uint64_t last = page->back().global_position;
          const bool forward = query.direction == store::Direction::kForward;
          done = !forward && last == 1;
          query.from_position = forward ? last + 1 : (done ? 1 : last - 1);
        }
        return page;
      });
}

absl::Status EventStoreService::BeginSubscription(const std::string& peer) {
  absl::MutexLock lock(&subscriptions_mu_);
  size_t& open = subscriptions_[peer];
  if (max_subscriptions_per_connection_ > 0 && open >= max_subscriptions_per_connection_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this connection (", peer, ") has ", open,
        " open subscriptions, the most that --max-subscriptions-per-connection (",
        max_subscriptions_per_connection_, ") allows; end one, or open another connection"));
  }
  ++open;
  return absl::OkStatus();
}

void EventStoreService::EndSubscription(const std::string& peer) {
  absl::MutexLock lock(&subscriptions_mu_);
  auto it = subscriptions_.find(peer);
  if (it != subscriptions_.end() && --it->second == 0) subscriptions_.erase(it);
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* EventStoreService::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  using Failed = FailedWriteReactor<v1::SubscribeResponse>;
  absl::StatusOr<Principal> caller = Caller(*context, kReader, "Subscribe");
  if (!caller.ok()) return new Failed(caller.status());
  if (!BeginCall()) return new Failed(kShuttingDown);
  absl::Status valid = ValidateSubscribe(store_.limits(), *request);
  v1::SubscribeRequest scoped = *request;
  std::vector<std::string> scopes;  // Several of the caller's, when it overlaps them.
  if (valid.ok()) valid = NarrowSubscription(*caller, scoped, scopes);
  std::string peer = context->peer();
  if (valid.ok()) {
    valid = quotas_->Take(QuotaKind::kSubscriptions, *caller);
    if (!valid.ok()) metrics_.CountQuotaRefusal(QuotaKind::kSubscriptions);
  }
  if (!valid.ok()) {
    EndCall();
    return new Failed(valid);
  }
  if (valid = BeginSubscription(peer); !valid.ok()) {
    quotas_->Give(QuotaKind::kSubscriptions, caller->name);
    EndCall();
    return new Failed(valid);
  }
  metrics_.SubscriptionOpened();
  return StartSubscribeReactor(tail_, metrics_, scoped, caller->tenant, std::move(scopes),
                               [this, peer = std::move(peer), principal = caller->name] {
                                 metrics_.SubscriptionClosed();
                                 EndSubscription(peer);
                                 quotas_->Give(QuotaKind::kSubscriptions, principal);
                                 EndCall();
                               });
}

// --- Consumer groups (docs/consumer-groups.md).

grpc::ServerUnaryReactor* EventStoreService::CreateConsumerGroup(
    grpc::CallbackServerContext* context, const v1::CreateConsumerGroupRequest* request,
    v1::ConsumerGroupInfo* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "CreateConsumerGroup");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response, caller = *caller]() -> absl::Status {
    if (!request->has_target()) {
      return absl::InvalidArgumentError("target: set one of stream_id, category or all");
    }
    LOGBOOK_ASSIGN_OR_RETURN(store::EventFilter target,
                             FromProto(store_.limits(), request->target()));
    LOGBOOK_RETURN_IF_ERROR(RequireWithinScopes(caller, "target", target));
    const std::string group = store::GroupKey(caller.tenant, request->group());
    LOGBOOK_ASSIGN_OR_RETURN(
        store::GroupDefinition d,
        groups_.Create(group, target, FromProto(*request), FromProto(request->settings())));
    spdlog::info("consumer group '{}' created", group);
    LOGBOOK_ASSIGN_OR_RETURN(store::GroupInfo info, groups_.Get(group));
    ToProto(info, *response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::UpdateConsumerGroup(
    grpc::CallbackServerContext* context, const v1::UpdateConsumerGroupRequest* request,
    v1::ConsumerGroupInfo* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "UpdateConsumerGroup");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response, caller = *caller]() -> absl::Status {
    const std::string group = store::GroupKey(caller.tenant, request->group());
    LOGBOOK_RETURN_IF_ERROR(CheckGroupScope(caller, group));
    LOGBOOK_RETURN_IF_ERROR(groups_.Update(group, FromProto(request->settings())).status());
    spdlog::info("consumer group '{}' updated", group);
    hub_.Wake(group);
    LOGBOOK_ASSIGN_OR_RETURN(store::GroupInfo info, groups_.Get(group));
    ToProto(info, *response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::DeleteConsumerGroup(
    grpc::CallbackServerContext* context, const v1::DeleteConsumerGroupRequest* request,
    v1::DeleteConsumerGroupResponse*) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "DeleteConsumerGroup");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, caller = *caller]() -> absl::Status {
    const std::string group = store::GroupKey(caller.tenant, request->group());
    LOGBOOK_RETURN_IF_ERROR(CheckGroupScope(caller, group));
    LOGBOOK_RETURN_IF_ERROR(groups_.Delete(group));
    spdlog::info("consumer group '{}' deleted", group);
    hub_.Wake(group);  // Its consumers here end with NOT_FOUND.
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::ListConsumerGroups(
    grpc::CallbackServerContext* context, const v1::ListConsumerGroupsRequest* request,
    v1::ListConsumerGroupsResponse* response) {
  absl::StatusOr<Principal> caller =
      Caller(*context, kReader | kConsumer | kOperator, "ListConsumerGroups");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, response, caller = *caller]() -> absl::Status {
    LOGBOOK_ASSIGN_OR_RETURN(std::vector<store::GroupInfo> groups, groups_.List(caller.tenant));
    for (const store::GroupInfo& info : groups) {
      // A scoped caller sees the groups within its scopes.
      if (RequireWithinScopes(caller, "target", info.definition.target).ok()) {
        ToProto(info, *response->add_groups());
      }
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::GetConsumerGroup(
    grpc::CallbackServerContext* context, const v1::GetConsumerGroupRequest* request,
    v1::ConsumerGroupInfo* response) {
  absl::StatusOr<Principal> caller =
      Caller(*context, kReader | kConsumer | kOperator, "GetConsumerGroup");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response, caller = *caller]() -> absl::Status {
    const std::string group = store::GroupKey(caller.tenant, request->group());
    LOGBOOK_RETURN_IF_ERROR(CheckGroupScope(caller, group));
    LOGBOOK_ASSIGN_OR_RETURN(store::GroupInfo info, groups_.Get(group));
    ToProto(info, *response);
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* EventStoreService::Consume(
    grpc::CallbackServerContext* context) {
  class Refused final : public grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse> {
   public:
    explicit Refused(const grpc::Status& status) { Finish(status); }
    void OnDone() override { delete this; }
  };
  absl::StatusOr<Principal> caller = Caller(*context, kConsumer, "Consume");
  if (!caller.ok()) return new Refused(ToGrpcStatus(caller.status()));
  if (absl::Status s = quotas_->Take(QuotaKind::kConsumers, *caller); !s.ok()) {
    metrics_.CountQuotaRefusal(QuotaKind::kConsumers);
    return new Refused(ToGrpcStatus(s));
  }
  if (!BeginCall()) {
    quotas_->Give(QuotaKind::kConsumers, caller->name);
    return new Refused(kShuttingDown);
  }
  // A scoped consumer joins only groups whose target its scopes cover.
  auto admit = [caller = *caller](const store::GroupDefinition& group) {
    return RequireWithinScopes(caller, "join.group", group.target);
  };
  metrics_.ConsumerOpened();
  return StartConsumeReactor(groups_, hub_, workers_, metrics_, caller->tenant, std::move(admit),
                             [this, principal = caller->name] {
                               metrics_.ConsumerClosed();
                               quotas_->Give(QuotaKind::kConsumers, principal);
                               EndCall();
                             });
}

grpc::ServerUnaryReactor* EventStoreService::ListParked(grpc::CallbackServerContext* context,
                                                        const v1::ListParkedRequest* request,
                                                        v1::ListParkedResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "ListParked");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response, caller = *caller]() -> absl::Status {
    const std::string group = store::GroupKey(caller.tenant, request->group());
    LOGBOOK_RETURN_IF_ERROR(CheckGroupScope(caller, group));
    constexpr uint32_t kDefaultCount = 1000, kMaxCount = 10000;
    if (request->max_count() > kMaxCount) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_count: ", request->max_count(), " is more than ", kMaxCount));
    }
    const uint32_t count = request->max_count() ? request->max_count() : kDefaultCount;
    LOGBOOK_ASSIGN_OR_RETURN(std::vector<store::ParkedEntry> parked,
                             groups_.ListParked(group, request->after(), count));
    for (const store::ParkedEntry& p : parked) ToProto(p, *response->add_parked());
    if (parked.size() == count) response->set_next_after(parked.back().delivery_id);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::ReplayParked(grpc::CallbackServerContext* context,
                                                          const v1::ReplayParkedRequest* request,
                                                          v1::ReplayParkedResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "ReplayParked");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response, caller = *caller]() -> absl::Status {
    const std::string group = store::GroupKey(caller.tenant, request->selection().group());
    LOGBOOK_RETURN_IF_ERROR(CheckGroupScope(caller, group));
    LOGBOOK_ASSIGN_OR_RETURN(store::ParkedSelection selection, FromProto(request->selection()));
    LOGBOOK_ASSIGN_OR_RETURN(uint64_t n, groups_.ReplayParked(group, selection));
    spdlog::info("consumer group '{}': {} parked events replayed", group, n);
    hub_.Wake(group);
    response->set_replayed(n);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* EventStoreService::DropParked(grpc::CallbackServerContext* context,
                                                        const v1::DropParkedRequest* request,
                                                        v1::DropParkedResponse* response) {
  absl::StatusOr<Principal> caller = Caller(*context, kOperator, "DropParked");
  if (!caller.ok()) return Refuse(context, caller.status());
  return RunUnary(context, *request, [this, request, response, caller = *caller]() -> absl::Status {
    const std::string group = store::GroupKey(caller.tenant, request->selection().group());
    LOGBOOK_RETURN_IF_ERROR(CheckGroupScope(caller, group));
    LOGBOOK_ASSIGN_OR_RETURN(store::ParkedSelection selection, FromProto(request->selection()));
    LOGBOOK_ASSIGN_OR_RETURN(uint64_t n, groups_.DropParked(group, selection));
    spdlog::info("consumer group '{}': {} parked events dropped", group, n);
    response->set_dropped(n);
    return absl::OkStatus();
  });
}

}  // namespace logbook::service
