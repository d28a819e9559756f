#include "logbook_json.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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

std::string StateName(v1::StreamState state) {
  switch (state) {
    case v1::ACTIVE:
      return "active";
    case v1::SOFT_DELETED:
      return "soft_deleted";
    case v1::TOMBSTONED:
      return "tombstoned";
  }
  return absl::StrCat("state ", static_cast<int>(state));
}

std::string StrategyName(v1::ConsumerGroupStrategy strategy) {
  switch (strategy) {
    case v1::PER_STREAM:
      return "per-stream";
    case v1::ROUND_ROBIN:
      return "round-robin";
    default:
      break;
  }
  return absl::StrCat("strategy ", static_cast<int>(strategy));
}

nlohmann::json AppendJson(const std::string& stream_id, const v1::AppendResponse& r) {
  return nlohmann::json{{"stream_id", stream_id},
                        {"first_version", r.first_version()},
                        {"last_version", r.last_version()},
                        {"first_position", r.first_position()},
                        {"last_position", r.last_position()},
                        {"event_ids", r.event_ids()},
                        {"committed_at", Rfc3339(r.committed_at())},
                        {"head_hash", absl::BytesToHexString(r.head_hash())},
                        {"events_since_snapshot", r.events_since_snapshot()}};
}

nlohmann::json StreamInfoJson(const v1::StreamInfo& info) {
  return nlohmann::json{{"stream_id", info.stream_id()},
                        {"version", info.version()},
                        {"last_position", info.last_position()},
                        {"created_at", Rfc3339(info.created_at())},
                        {"state", StateName(info.state())},
                        {"first_version", info.first_version()},
                        {"head_hash", absl::BytesToHexString(info.head_hash())}};
}

namespace {

nlohmann::json TargetJson(const v1::ConsumerGroupTarget& t) {
  nlohmann::json j = nlohmann::json::object();
  switch (t.kind_case()) {
    case v1::ConsumerGroupTarget::kStreamId:
      j["stream_id"] = t.stream_id();
      break;
    case v1::ConsumerGroupTarget::kCategory:
      j["category"] = t.category();
      break;
    case v1::ConsumerGroupTarget::kAll:
      j["all"] = true;
      break;
    default:
      break;
  }
  if (!t.filter().category().empty()) j["filter_category"] = t.filter().category();
  if (!t.filter().stream_prefix().empty()) j["prefix"] = t.filter().stream_prefix();
  if (t.filter().event_types_size() > 0) {
    j["types"] =
        std::vector<std::string>(t.filter().event_types().begin(), t.filter().event_types().end());
  }
  return j;
}

nlohmann::json SettingsJson(const v1::ConsumerGroupSettings& s) {
  return nlohmann::json{{"strategy", StrategyName(s.strategy())},
                        {"ack_timeout_ms", s.ack_timeout_ms()},
                        {"max_deliveries", s.max_deliveries()},
                        {"retry_backoff_ms", s.retry_backoff_ms()},
                        {"retry_backoff_max_ms", s.retry_backoff_max_ms()},
                        {"max_in_flight", s.max_in_flight()}};
}

}  // namespace

nlohmann::json ParkedJson(const v1::ParkedEvent& p) {
  return {{"delivery_id", p.delivery_id()},
          {"stream_id", p.stream_id()},
          {"stream_version", p.stream_version()},
          {"type", p.event_type()},
          {"attempts", p.attempts()},
          {"reason", p.reason()},
          {"parked_at", Rfc3339(p.parked_at())}};
}

nlohmann::json GroupJson(const v1::ConsumerGroupInfo& g) {
  nlohmann::json members = nlohmann::json::array();
  for (const v1::ConsumerGroupMember& m : g.members()) {
    members.push_back({{"consumer", m.consumer()},
                       {"instance", m.instance()},
                       {"in_flight", m.in_flight()},
                       {"streams_owned", m.streams_owned()},
                       {"connected_at", Rfc3339(m.connected_at())}});
  }
  return nlohmann::json{{"group", g.group()},
                        {"target", TargetJson(g.target())},
                        {"settings", SettingsJson(g.settings())},
                        {"checkpoint_position", g.checkpoint_position()},
                        {"head_position", g.head_position()},
                        {"lag_events", g.lag_events()},
                        {"lag_seconds", g.lag_seconds()},
                        {"in_flight", g.in_flight()},
                        {"parked", g.parked()},
                        {"oldest_parked_age_seconds", g.oldest_parked_age_seconds()},
                        {"delivered", g.delivered()},
                        {"acked", g.acked()},
                        {"members", members},
                        {"created_at", Rfc3339(g.created_at())}};
}

}  // namespace logbook::json
