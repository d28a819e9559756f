#include "event_json.h"

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "logbook/store/limits.h"

namespace logbook::json {

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ",
                          absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()),
                          absl::UTCTimeZone());
}

bool ParseRfc3339(const std::string& text, google::protobuf::Timestamp* out) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return false;
  const int64_t seconds = absl::ToUnixSeconds(time);
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return true;
}

nlohmann::json PayloadJson(const std::string& content_type, const std::string& bytes) {
  if (store::IsJsonContentType(content_type)) {
    nlohmann::json parsed = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) return parsed;
  }
  if (store::IsValidUtf8(bytes) && bytes.find('\0') == std::string::npos) return bytes;
  return nlohmann::json{{"base64", absl::Base64Escape(bytes)}};
}

nlohmann::json EventJson(const v1::RecordedEvent& e) {
  nlohmann::json j = {{"global_position", e.global_position()},
                      {"stream_id", e.stream_id()},
                      {"stream_version", e.stream_version()},
                      {"event_id", e.event_id()},
                      {"type", e.type()},
                      {"content_type", e.content_type()},
                      {"recorded_at", Rfc3339(e.recorded_at())},
                      {"data", PayloadJson(e.content_type(), e.data())}};
  if (!e.metadata().empty()) j["metadata"] = PayloadJson(e.content_type(), e.metadata());
  if (!e.correlation_id().empty()) j["correlation_id"] = e.correlation_id();
  if (!e.causation_id().empty()) j["causation_id"] = e.causation_id();
  if (e.has_schema_version()) j["schema_version"] = e.schema_version();
  if (!e.tenant().empty()) j["tenant"] = e.tenant();
  if (!e.written_by().empty()) j["written_by"] = e.written_by();
  if (!e.traceparent().empty()) j["traceparent"] = e.traceparent();
  if (e.has_redaction_reason()) {
    j["data"] = nullptr;
    j["redaction_reason"] = e.redaction_reason();
  }
  return j;
}

}  // namespace logbook::json
