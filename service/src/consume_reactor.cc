#include "consume_reactor.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "convert.h"
#include "metrics.h"
#include "spdlog/spdlog.h"

namespace logbook::service {
namespace {

constexpr int kMaxIds = 10000;
// join.max_batch, at most; and the bytes of one `deliveries` message.
constexpr uint32_t kMaxBatch = 1000;
constexpr size_t kMaxBatchBytes = 1 << 20;
constexpr size_t kMaxReason = 1024;
constexpr uint32_t kMaxRetryDelayMs = 3600000;

absl::Status ValidateIds(absl::string_view field,
                         const google::protobuf::RepeatedField<uint64_t>& ids) {
  if (ids.empty() || ids.size() > kMaxIds) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": 1 to ", kMaxIds, " ids, not ", ids.size()));
  }
  std::vector<uint64_t> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  if (auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", *twice, " appears twice"));
  }
  return absl::OkStatus();
}

std::vector<uint64_t> Ids(const google::protobuf::RepeatedField<uint64_t>& ids) {
  return std::vector<uint64_t>(ids.begin(), ids.end());
}

store::NackAction FromProto(v1::NackAction action) {
  switch (action) {
    case v1::PARK:
      return store::NackAction::kPark;
    case v1::SKIP:
      return store::NackAction::kSkip;
    default:
      return store::NackAction::kRetry;
  }
}

// Lifetime: the reactor is deleted once gRPC is done with it (OnDone) and
// no task of its runs on the workers. Every member below mu_ is guarded
// by it; gRPC operations are started holding it (gRPC never runs a
// reaction inline from them).
class ConsumeReactor final : public grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>,
                             public ConsumerSession {
 public:
  ConsumeReactor(store::ConsumerGroups& groups, ConsumerGroupHub& hub, WorkerPool& workers,
                 Metrics& metrics, std::string tenant, AdmitToGroup admit,
                 std::function<void()> on_done)
      : groups_(groups),
        hub_(hub),
        workers_(workers),
        metrics_(metrics),
        tenant_(std::move(tenant)),
        admit_(std::move(admit)),
        on_done_(std::move(on_done)) {
    absl::MutexLock lock(&mu_);
    StartRead(&request_);
  }

  // ConsumerSession, from the dispatcher's thread.
  void Deliver(std::vector<store::GroupDelivery> deliveries) override {
    Send(std::move(deliveries));
  }
  void Assign(store::StreamAssignment assignment) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    v1::ConsumerAssignment* a = outbox_.emplace_back().mutable_assignment();
    for (std::string& m : assignment.members) a->add_members(std::move(m));
    a->set_streams_owned(assignment.streams_owned);
    for (std::string& id : assignment.stream_ids) a->add_stream_ids(std::move(id));
    WriteNext();
  }
  void End(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    FinishOnce(ToGrpcStatus(status));
  }

  // grpc::ServerBidiReactor.
  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) {  // The client is done sending (or gone): so is this call.
      FinishOnce(grpc::Status::OK);
      return;
    }
    const v1::ConsumeRequest request = request_;
    if (absl::Status known = RejectUnknownEnumValues(request); !known.ok()) {
      FinishOnce(ToGrpcStatus(known));
      return;
    }
    if (!joined_) {
      if (request.kind_case() != v1::ConsumeRequest::kJoin) {
        FinishOnce(ToGrpcStatus(absl::FailedPreconditionError(
            "join: the first message of Consume must be a join")));
        return;
      }
      RunTask([this, join = request.join()] { Join(join); });
      return;
    }
    absl::Status valid;
    switch (request.kind_case()) {
      case v1::ConsumeRequest::kJoin:
        valid = absl::FailedPreconditionError(absl::StrCat(
            "join: this call already joined group '", group_, "' as '", consumer_, "'"));
        break;
      case v1::ConsumeRequest::kAck:
      case v1::ConsumeRequest::kNack:
        valid = ValidateSettle(request);
        break;
      default:
        valid = absl::InvalidArgumentError("kind: set one of join, ack or nack");
    }
    if (!valid.ok()) {
      FinishOnce(ToGrpcStatus(valid));
      return;
    }
    RunTask([this, request] { Settle(request); });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    outbox_.pop_front();
    WriteNext();
  }

  void OnDone() override {
    bool reserved;
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
      done_ = true;
      reserved = reserved_;
    }
    // The name is free again at once (MaybeDelete removes it again, in case
    // a join task reserved it meanwhile).
    if (reserved) hub_.Remove(group_, consumer_, this);
    on_done_();
    MaybeDelete();
  }

 private:
  // Runs `task` on a worker; reads the next message after it, unless it
  // finished the call.
  void RunTask(std::function<void()> task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    task_running_ = true;
    if (!workers_.TrySubmit([this, task = std::move(task)] {
          task();
          {
            absl::MutexLock lock(&mu_);
            task_running_ = false;
            if (!finished_) StartRead(&request_);
          }
          MaybeDelete();
        })) {
      task_running_ = false;
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "server overloaded: too many calls waiting for the database; "
                              "retry with backoff"));
    }
  }

  // Reserves the name here first (ALREADY_EXISTS if a call of this
  // instance holds it), then joins in the database, which refuses a live
  // member of that name on another instance.
  void Join(const v1::ConsumerJoin& join) {
    absl::Status valid = store::ValidateGroupName("join.group", join.group());
    if (valid.ok()) valid = store::ValidateGroupName("join.consumer", join.consumer());
    const std::string session = hub_.NewSession();
    // The group of the caller's tenant (store::GroupKey), once its name is valid.
    const std::string key = store::GroupKey(tenant_, join.group());
    if (valid.ok() && !hub_.Reserve(key, join.consumer(), session, this)) {
      valid = Taken(join);
    }
    absl::StatusOr<store::GroupDefinition> group = absl::UnknownError("not joined");
    if (valid.ok()) {
      {
        absl::MutexLock lock(&mu_);
        reserved_ = true;  // Removed in MaybeDelete, which runs after this task.
        group_ = key;
        consumer_ = join.consumer();
        session_ = session;
      }
      group = groups_.Join(key, join.consumer(), session);
    } else {
      group = valid;
    }
    if (group.ok()) {
      if (absl::Status admitted = admit_(*group); !admitted.ok()) {
        (void)groups_.Leave(key, join.consumer(), session);
        group = admitted;
      }
    }
    if (group.ok() && join.max_batch() > kMaxBatch) {
      (void)groups_.Leave(key, join.consumer(), session);
      group = absl::InvalidArgumentError(absl::StrCat("join.max_batch: ", join.max_batch(),
                                                      " is more than ", kMaxBatch));
    }
    if (group.ok() && join.max_in_flight() > group->settings.max_in_flight) {
      (void)groups_.Leave(key, join.consumer(), session);
      group = absl::InvalidArgumentError(absl::StrCat(
          "join.max_in_flight: ", join.max_in_flight(), " is more than the group's ",
          group->settings.max_in_flight));
    }
    uint32_t max_in_flight = 0;
    {
      absl::MutexLock lock(&mu_);
      if (!group.ok()) {
        FinishOnce(ToGrpcStatus(group.status()));
        return;
      }
      joined_ = true;
      max_batch_ = join.max_batch();
      max_in_flight = join.max_in_flight() ? join.max_in_flight() : group->settings.max_in_flight;
      v1::ConsumerJoined* joined = outbox_.emplace_back().mutable_joined();
      joined->set_instance(hub_.instance());
      joined->set_max_in_flight(max_in_flight);
      WriteNext();
    }
    spdlog::info("consumer group '{}': consumer '{}' joined as {}", group_, consumer_, session);
    // If the call ended meanwhile, Deliver ignores what comes before Remove.
    hub_.Activate(group_, consumer_, max_in_flight);
  }

  static absl::Status Taken(const v1::ConsumerJoin& join) {
    return absl::AlreadyExistsError(absl::StrCat("consumer '", join.consumer(),
                                                 "' is already connected to group '",
                                                 join.group(), "'"));
  }

  // Queues `deliveries` to be written, in order: false (and nothing
  // queued) once the call is finished.
  bool Send(std::vector<store::GroupDelivery> deliveries) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    const uint64_t again = std::count_if(deliveries.begin(), deliveries.end(),
                                         [](const store::GroupDelivery& d) { return d.attempt > 1; });
    metrics_.CountGroupDelivered(group_, deliveries.size(), again);
    v1::Deliveries* batch = nullptr;  // The message being filled, if batching.
    size_t batch_bytes = 0;
    for (store::GroupDelivery& d : deliveries) {
      v1::Delivery delivery;
      delivery.set_delivery_id(d.event.global_position);
      delivery.set_attempt(d.attempt);
      ToProto(d.event, *delivery.mutable_event());
      if (max_batch_ <= 1) {
        *outbox_.emplace_back().mutable_delivery() = std::move(delivery);
        continue;
      }
      const size_t bytes = delivery.ByteSizeLong();
      if (batch == nullptr || batch->deliveries_size() >= static_cast<int>(max_batch_) ||
          batch_bytes + bytes > kMaxBatchBytes) {
        batch = outbox_.emplace_back().mutable_deliveries();
        batch_bytes = 0;
      }
      *batch->add_deliveries() = std::move(delivery);
      batch_bytes += bytes;
    }
    WriteNext();
    return true;
  }

  void Settle(const v1::ConsumeRequest& request) {
    absl::Status status;
    bool continued = false;
    if (request.has_ack()) {
      // PER_STREAM: the acked streams' next events come back at once.
      const std::vector<uint64_t> ids = Ids(request.ack().delivery_ids());
      absl::StatusOr<std::vector<store::GroupDelivery>> next =
          groups_.AckAndContinue(group_, consumer_, session_, ids);
      status = next.status();
      // As many delivered as acked: the consumer has no more room than
      // before, and its dispatcher need not look.
      continued = next.ok() && next->size() >= ids.size();
      // Ended meanwhile: hand them back now (its Leave may have run before).
      if (next.ok() && !next->empty() && !Send(*std::move(next))) {
        (void)groups_.Leave(group_, consumer_, session_);
      }
    } else {
      const v1::ConsumerNack& nack = request.nack();
      std::optional<absl::Duration> delay;
      if (nack.has_retry_delay_ms()) delay = absl::Milliseconds(nack.retry_delay_ms());
      status = groups_.Nack(group_, consumer_, session_, Ids(nack.delivery_ids()),
                            FromProto(nack.action()), delay, nack.reason());
    }
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      FinishOnce(ToGrpcStatus(status));
      return;
    }
    if (request.has_ack()) {
      metrics_.CountGroupSettled(group_, "ack", request.ack().delivery_ids_size());
    } else {
      const v1::NackAction action = request.nack().action();
      metrics_.CountGroupSettled(
          group_, action == v1::PARK ? "park" : action == v1::SKIP ? "skip" : "retry",
          request.nack().delivery_ids_size());
    }
    if (!continued) hub_.Wake(group_);
  }

  void WriteNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || outbox_.empty()) return;
    writing_ = true;
    StartWrite(&outbox_.front());
  }

  void FinishOnce(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  // Once gRPC is done with the call and no task runs: leaves the group
  // (its dispatcher calls Deliver no more once Remove returns) and deletes
  // the reactor, exactly once.
  void MaybeDelete() {
    {
      absl::MutexLock lock(&mu_);
      if (!done_ || task_running_ || deleting_) return;
      deleting_ = true;
    }
    if (reserved_) hub_.Remove(group_, consumer_, this);
    if (joined_) spdlog::info("consumer group '{}': consumer '{}' left", group_, consumer_);
    delete this;
  }

  store::ConsumerGroups& groups_;
  ConsumerGroupHub& hub_;
  WorkerPool& workers_;
  Metrics& metrics_;
  const std::string tenant_;  // The caller's: its groups are that tenant's.
  const AdmitToGroup admit_;
  const std::function<void()> on_done_;
  absl::Mutex mu_;
  v1::ConsumeRequest request_;  // Owned by the read in flight.
  // Messages to write; the front one is being written while writing_.
  std::deque<v1::ConsumeResponse> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool task_running_ ABSL_GUARDED_BY(mu_) = false;
  bool deleting_ ABSL_GUARDED_BY(mu_) = false;
  // Set once, by the join task, under mu_; read after it.
  bool reserved_ = false;
  bool joined_ = false;
  std::string group_;
  std::string consumer_;
  std::string session_;  // hub_.NewSession(): what it holds deliveries as.
  uint32_t max_batch_ ABSL_GUARDED_BY(mu_) = 0;  // join.max_batch.
};

}  // namespace

absl::Status ValidateSettle(const v1::ConsumeRequest& request) {
  if (request.has_ack()) return ValidateIds("ack.delivery_ids", request.ack().delivery_ids());
  const v1::ConsumerNack& nack = request.nack();
  if (absl::Status s = ValidateIds("nack.delivery_ids", nack.delivery_ids()); !s.ok()) return s;
  if (nack.reason().size() > kMaxReason) {
    return absl::InvalidArgumentError(absl::StrCat("nack.reason: at most ", kMaxReason,
                                                   " bytes, not ", nack.reason().size()));
  }
  if (nack.retry_delay_ms() > kMaxRetryDelayMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nack.retry_delay_ms: ", nack.retry_delay_ms(), " is more than ", kMaxRetryDelayMs));
  }
  if (nack.has_retry_delay_ms() && nack.action() != v1::RETRY) {
    return absl::InvalidArgumentError("nack.retry_delay_ms: only a RETRY waits");
  }
  return absl::OkStatus();
}

grpc::ServerBidiReactor<v1::ConsumeRequest, v1::ConsumeResponse>* StartConsumeReactor(
    store::ConsumerGroups& groups, ConsumerGroupHub& hub, WorkerPool& workers, Metrics& metrics,
    std::string tenant, AdmitToGroup admit, std::function<void()> on_done) {
  return new ConsumeReactor(groups, hub, workers, metrics, std::move(tenant), std::move(admit),
                            std::move(on_done));
}

}  // namespace logbook::service
