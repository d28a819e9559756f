// The JSON form of logbook.v1's answers (events, appends, streams,
// consumer groups), shared by the `logbook` CLI (--json) and logbookd's
// HTTP API, so both print them alike: an event's data as parsed JSON when
// its content type is JSON, a string when it is UTF-8 text, {"base64": ...}
// otherwise; times in RFC 3339; hashes in hex. Pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "google/protobuf/timestamp.pb.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::json {

// "2026-11-17T14:00:00.000000Z".
std::string Rfc3339(const google::protobuf::Timestamp& t);
// RFC 3339 (e.g. 2026-11-17T14:00:00Z) -> Timestamp; false when malformed.
bool ParseRfc3339(const std::string& text, google::protobuf::Timestamp* out);

// Payload bytes as JSON: parsed JSON for JSON content, a string for UTF-8
// text, {"base64": ...} otherwise.
nlohmann::json PayloadJson(const std::string& content_type, const std::string& bytes);

// An event: position, stream, version, id, type, content type, time and
// data always; metadata, ids, schema version, tenant, writer and trace
// context when set. A redacted event has "data": null and
// "redaction_reason".
nlohmann::json EventJson(const v1::RecordedEvent& e);

// "active", "soft_deleted", "tombstoned".
std::string StateName(v1::StreamState state);
// "per-stream", "round-robin".
std::string StrategyName(v1::ConsumerGroupStrategy strategy);

// An append's answer, for `stream_id`.
nlohmann::json AppendJson(const std::string& stream_id, const v1::AppendResponse& r);
// GetStream's answer.
nlohmann::json StreamInfoJson(const v1::StreamInfo& info);
// A consumer group: target, settings, checkpoint, lag, counts, members.
nlohmann::json GroupJson(const v1::ConsumerGroupInfo& g);
// A parked event: delivery id, stream, version, type, attempts, reason,
// when it was parked.
nlohmann::json ParkedJson(const v1::ParkedEvent& p);

}  // namespace logbook::json
