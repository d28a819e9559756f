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

// absl and gRPC codes match one to one; the message is kept. Every error
// the store or a validation gives a client passes here, and is logged at debug level ("answering CODE:
// message"; the tests collect these lines and check that no PostgreSQL
// text is among them).
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

// A valid Timestamp (nanos 0..999,999,999; years 1..9999) as absl::Time, or
// INVALID_ARGUMENT naming `field`.
absl::StatusOr<absl::Time> FromProto(absl::string_view field, const google::protobuf::Timestamp& t);

// The queries of a read; INVALID_ARGUMENT for an invalid until_time. Enum
// values and max_count are checked separately.
absl::StatusOr<store::ReadStreamQuery> FromProto(const v1::ReadStreamRequest& request);
absl::StatusOr<store::ReadAllQuery> FromProto(const v1::ReadAllRequest& request);

store::Snapshot FromProto(const v1::SaveSnapshotRequest& request);
store::SnapshotQuery FromProto(const v1::LoadSnapshotRequest& request);

void ToProto(store::AppendResult&& result, v1::AppendResponse& out);  // Moves the ids.
void ToProto(const store::RecordedEvent& event, v1::RecordedEvent& out);
void ToProto(const store::StreamInfo& info, v1::StreamInfo& out);
void ToProto(absl::Time time, google::protobuf::Timestamp& out);
void ToProto(const store::DeleteResult& result, v1::DeleteStreamResponse& out);
void ToProto(const store::RedactResult& result, v1::RedactEventResponse& out);
void ToProto(const store::Snapshot& snapshot, v1::Snapshot& out);
// Progress of a verification; the result once it finished.
void ToProto(const store::VerifyReport& report, v1::VerifyProgress& out);
void ToProto(const store::VerifyReport& report, v1::VerifyResult& out);
void ToProto(const store::Checkpoint& checkpoint, v1::SignedCheckpoint& out);

v1::StreamState ToProto(store::StreamState state);
v1::BreakReason ToProto(store::BreakReason reason);

}  // namespace logbook::service
