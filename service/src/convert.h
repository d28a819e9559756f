// Conversions between proto messages and store types, and status mapping.
// Pure functions, thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "logbook/store/types.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::service {

// The trailer carrying the actual stream version on ABORTED appends.
inline constexpr char kActualVersionTrailer[] = "logbook-actual-version";

// absl and gRPC codes match one to one; the message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Adds the trailers that `status` carries (the actual version on ABORTED).
void AddStatusTrailers(const absl::Status& status, grpc::ServerContextBase& context);

store::ExpectedVersion FromProto(const v1::ExpectedVersion& expected);
std::vector<store::NewEvent> FromProto(const google::protobuf::RepeatedPtrField<v1::EventData>& events);

// INVALID_ARGUMENT naming the field when `request` carries an enum value this
// server does not know (proto2 parks those among the unknown fields).
absl::Status RejectUnknownEnumValues(const google::protobuf::Message& request);

store::Direction FromProto(v1::Direction direction);
store::EventFilter FromProto(const v1::Filter& filter);

void ToProto(const store::AppendResult& result, v1::AppendResponse& out);
void ToProto(const store::RecordedEvent& event, v1::RecordedEvent& out);
void ToProto(const store::StreamInfo& info, v1::StreamInfo& out);
void ToProto(absl::Time time, google::protobuf::Timestamp& out);

}  // namespace logbook::service
