#include "convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "logbook/store/event_store.h"
#include "logbook/store/status_macros.h"
#include "spdlog/spdlog.h"

namespace logbook::service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (!status.ok()) {
    spdlog::debug("answering {}: {}", absl::StatusCodeToString(status.code()),
                  std::string(status.message()));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

void AddStatusTrailers(const absl::Status& status, grpc::ServerContextBase& context) {
  if (auto version = status.GetPayload(store::kActualVersionPayload)) {
    context.AddTrailingMetadata(kActualVersionTrailer, std::string(*version));
  }
}

store::ExpectedVersion FromProto(const v1::ExpectedVersion& expected) {
  switch (expected.kind_case()) {
    case v1::ExpectedVersion::kNoStream:
      return store::ExpectedVersion::NoStream();
    case v1::ExpectedVersion::kStreamExists:
      return store::ExpectedVersion::StreamExists();
    case v1::ExpectedVersion::kExact:
      return store::ExpectedVersion::Exact(expected.exact());
    case v1::ExpectedVersion::kAny:
    case v1::ExpectedVersion::KIND_NOT_SET:
      break;
  }
  return store::ExpectedVersion::Any();
}

std::vector<store::NewEvent> FromProto(
    const google::protobuf::RepeatedPtrField<v1::EventData>& events) {
  std::vector<store::NewEvent> out;
  out.reserve(events.size());
  for (const v1::EventData& e : events) {
    out.push_back({e.event_id(), e.type(), e.data(), e.metadata(), e.content_type(),
                   e.correlation_id(), e.causation_id(),
                   e.has_schema_version() ? std::optional<uint32_t>(e.schema_version())
                                          : std::nullopt,
                   /*traceparent=*/""});
  }
  return out;
}

absl::Status RejectUnknownEnumValues(const google::protobuf::Message& request) {
  const google::protobuf::UnknownFieldSet& unknown =
      request.GetReflection()->GetUnknownFields(request);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const google::protobuf::UnknownField& f = unknown.field(i);
    const google::protobuf::FieldDescriptor* field =
        request.GetDescriptor()->FindFieldByNumber(f.number());
    if (field == nullptr || field->enum_type() == nullptr ||
        f.type() != google::protobuf::UnknownField::TYPE_VARINT) {
      continue;
    }
    std::vector<std::string> known;
    for (int v = 0; v < field->enum_type()->value_count(); ++v) {
      const auto* value = field->enum_type()->value(v);
      known.push_back(absl::StrCat(value->name(), "=", value->number()));
    }
    return absl::InvalidArgumentError(absl::StrCat(field->name(), ": unknown value ",
                                                   static_cast<int64_t>(f.varint()), " (",
                                                   absl::StrJoin(known, ", "), ")"));
  }
  return absl::OkStatus();
}

store::Direction FromProto(v1::Direction direction) {
  return direction == v1::BACKWARD ? store::Direction::kBackward : store::Direction::kForward;
}

store::EventFilter FromProto(const v1::Filter& filter) {
  store::EventFilter out;
  out.stream_prefix = filter.stream_prefix();
  out.category = filter.category();
  out.event_types.assign(filter.event_types().begin(), filter.event_types().end());
  return out;
}

absl::StatusOr<absl::Time> FromProto(absl::string_view field,
                                     const google::protobuf::Timestamp& t) {
  constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  if (t.nanos() < 0 || t.nanos() > 999999999) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".nanos: ", t.nanos(), " is outside 0..999999999"));
  }
  if (t.seconds() < kMinSeconds || t.seconds() > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".seconds: ", t.seconds(), " is outside 0001-01-01 to 9999-12-31 (",
        kMinSeconds, "..", kMaxSeconds, ")"));
  }
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

absl::StatusOr<store::ReadStreamQuery> FromProto(const v1::ReadStreamRequest& request) {
  store::ReadStreamQuery query;
  query.stream_id = request.stream_id();
  if (request.has_from_version()) query.from_version = request.from_version();
  query.direction = FromProto(request.direction());
  query.max_count = request.max_count();
  if (request.has_until_version()) query.until_version = request.until_version();
  if (request.has_until_time()) {
    LOGBOOK_ASSIGN_OR_RETURN(query.until_time, FromProto("until_time", request.until_time()));
  }
  return query;
}

absl::StatusOr<store::ReadAllQuery> FromProto(const v1::ReadAllRequest& request) {
  store::ReadAllQuery query;
  if (request.has_from_position()) query.from_position = request.from_position();
  query.direction = FromProto(request.direction());
  query.max_count = request.max_count();
  query.filter = FromProto(request.filter());
  if (request.has_until_position()) query.until_position = request.until_position();
  if (request.has_until_time()) {
    LOGBOOK_ASSIGN_OR_RETURN(query.until_time, FromProto("until_time", request.until_time()));
  }
  return query;
}

store::Snapshot FromProto(const v1::SaveSnapshotRequest& request) {
  store::Snapshot out;
  out.stream_id = request.stream_id();
  out.stream_version = request.stream_version();
  out.schema_version = request.schema_version();
  out.state = request.state();
  return out;
}

store::SnapshotQuery FromProto(const v1::LoadSnapshotRequest& request) {
  store::SnapshotQuery out;
  out.stream_id = request.stream_id();
  if (request.has_max_version()) out.max_version = request.max_version();
  if (request.has_schema_version()) out.schema_version = request.schema_version();
  return out;
}

void ToProto(absl::Time time, google::protobuf::Timestamp& out) {
  const int64_t micros = absl::ToUnixMicros(time);
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    --seconds;
  }
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(rest * 1000));
}

void ToProto(store::AppendResult&& result, v1::AppendResponse& out) {
  out.set_first_version(result.first_version);
  out.set_last_version(result.last_version);
  out.set_first_position(result.first_position);
  out.set_last_position(result.last_position);
  ToProto(result.committed_at, *out.mutable_committed_at());
  out.mutable_event_ids()->Reserve(static_cast<int>(result.event_ids.size()));
  for (std::string& id : result.event_ids) out.add_event_ids(std::move(id));
  out.set_head_hash(std::move(result.head_hash));
  out.set_events_since_snapshot(result.events_since_snapshot);
}

void ToProto(const store::RecordedEvent& e, v1::RecordedEvent& out) {
  out.set_event_id(e.event_id);
  out.set_type(e.type);
  out.set_data(e.data);
  out.set_metadata(e.metadata);
  out.set_content_type(e.content_type);
  out.set_correlation_id(e.correlation_id);
  out.set_causation_id(e.causation_id);
  out.set_stream_id(e.stream_id);
  out.set_stream_version(e.stream_version);
  out.set_global_position(e.global_position);
  ToProto(e.recorded_at, *out.mutable_recorded_at());
  if (e.schema_version) out.set_schema_version(*e.schema_version);
  if (e.redaction_reason) out.set_redaction_reason(*e.redaction_reason);
  out.set_written_by(e.written_by);
  if (!e.traceparent.empty()) out.set_traceparent(e.traceparent);
  out.set_tenant(e.tenant);
}

void ToProto(const store::StreamInfo& info, v1::StreamInfo& out) {
  out.set_stream_id(info.stream_id);
  out.set_version(info.version);
  out.set_last_position(info.last_position);
  ToProto(info.created_at, *out.mutable_created_at());
  out.set_head_hash(info.head_hash);
  out.set_state(ToProto(info.state));
  out.set_first_version(info.first_version);
}

void ToProto(const store::DeleteResult& result, v1::DeleteStreamResponse& out) {
  out.set_deleted_version(result.deleted_version);
  out.set_audit_position(result.audit_position);
}

void ToProto(const store::RedactResult& result, v1::RedactEventResponse& out) {
  out.set_global_position(result.global_position);
  out.set_audit_position(result.audit_position);
}

void ToProto(const store::Snapshot& snapshot, v1::Snapshot& out) {
  out.set_stream_id(snapshot.stream_id);
  out.set_stream_version(snapshot.stream_version);
  out.set_schema_version(snapshot.schema_version);
  out.set_state(snapshot.state);
  ToProto(snapshot.created_at, *out.mutable_created_at());
}

void ToProto(const store::VerifyReport& report, v1::VerifyProgress& out) {
  out.set_events_checked(report.events_checked);
  out.set_events_total(report.events_total);
}

void ToProto(const store::VerifyReport& report, v1::VerifyResult& out) {
  out.set_ok(!report.first_broken.has_value());
  out.set_events_checked(report.events_checked);
  out.set_streams_checked(report.streams_checked);
  if (const auto& broken = report.first_broken) {
    v1::BrokenEvent& b = *out.mutable_first_broken();
    b.set_stream_id(broken->stream_id);
    b.set_stream_version(broken->stream_version);
    b.set_global_position(broken->global_position);
    b.set_reason(ToProto(broken->reason));
    b.set_detail(broken->detail);
  } else if (!report.head_hash.empty()) {
    out.set_head_hash(report.head_hash);
  }
  if (report.whole_log) out.set_whole_log(true);
  if (report.checkpoints_checked > 0) out.set_checkpoints_checked(report.checkpoints_checked);
  if (report.latest_checkpoint) {
    ToProto(*report.latest_checkpoint, *out.mutable_latest_checkpoint());
  }
}

void ToProto(const store::Checkpoint& checkpoint, v1::SignedCheckpoint& out) {
  out.set_id(checkpoint.id);
  out.set_log_position(checkpoint.log_position);
  out.set_log_hash(checkpoint.log_hash);
  ToProto(checkpoint.created_at, *out.mutable_created_at());
  out.set_key_id(checkpoint.key_id);
  out.set_signature(checkpoint.signature);
}

v1::StreamState ToProto(store::StreamState state) {
  switch (state) {
    case store::StreamState::kActive: return v1::ACTIVE;
    case store::StreamState::kSoftDeleted: return v1::SOFT_DELETED;
    case store::StreamState::kTombstoned: return v1::TOMBSTONED;
  }
  return v1::ACTIVE;
}

v1::BreakReason ToProto(store::BreakReason reason) {
  using R = store::BreakReason;
  switch (reason) {
    case R::kDataChanged: return v1::DATA_CHANGED;
    case R::kMetadataChanged: return v1::METADATA_CHANGED;
    case R::kEventMissing: return v1::EVENT_MISSING;
    case R::kEventInserted: return v1::EVENT_INSERTED;
    case R::kReceiptChanged: return v1::RECEIPT_CHANGED;
    case R::kVersionsOutOfSequence: return v1::VERSIONS_OUT_OF_SEQUENCE;
    case R::kEventChanged: return v1::EVENT_CHANGED;
    case R::kRedactionNotAudited: return v1::REDACTION_NOT_AUDITED;
    case R::kCheckpointMismatch: return v1::CHECKPOINT_MISMATCH;
    case R::kCheckpointSignatureInvalid: return v1::CHECKPOINT_SIGNATURE_INVALID;
    case R::kStreamStateChanged: return v1::STREAM_STATE_CHANGED;
  }
  return v1::BREAK_REASON_UNSPECIFIED;
}

}  // namespace logbook::service
