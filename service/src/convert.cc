#include "convert.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "logbook/store/event_store.h"

namespace logbook::service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
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
                   e.correlation_id(), e.causation_id()});
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

void ToProto(const store::AppendResult& result, v1::AppendResponse& out) {
  out.set_first_version(result.first_version);
  out.set_last_version(result.last_version);
  out.set_first_position(result.first_position);
  out.set_last_position(result.last_position);
  ToProto(result.committed_at, *out.mutable_committed_at());
  for (const std::string& id : result.event_ids) out.add_event_ids(id);
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
}

void ToProto(const store::StreamInfo& info, v1::StreamInfo& out) {
  out.set_stream_id(info.stream_id);
  out.set_version(info.version);
  out.set_last_position(info.last_position);
  ToProto(info.created_at, *out.mutable_created_at());
}

}  // namespace logbook::service
