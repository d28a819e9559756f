#include "event_rows.h"

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pg_array.h"

namespace logbook::store {
namespace {

// A time from extract(epoch FROM ...) as text: seconds, then up to six
// decimals ("1796700634.947123", "-1.500000"). Read as text rather than
// multiplied to microseconds in SQL: numeric arithmetic per row was a
// quarter of a catch-up read's cost in PostgreSQL.
absl::Time FromEpochText(const pqxx::field& f) {
  absl::string_view text(f.c_str(), f.size());
  const bool negative = !text.empty() && text.front() == '-';
  if (negative) text.remove_prefix(1);
  int64_t seconds = 0, micros = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] != '.'; ++i) seconds = seconds * 10 + (text[i] - '0');
  int digits = 0;
  for (++i; i < text.size() && digits < 6; ++i, ++digits) micros = micros * 10 + (text[i] - '0');
  for (; digits < 6; ++digits) micros *= 10;
  const int64_t total = seconds * 1000000 + micros;
  return absl::FromUnixMicros(negative ? -total : total);
}

}  // namespace

void ToEvent(const pqxx::row& row, RecordedEvent& e) {
  e.global_position = row[0].as<uint64_t>();
  e.stream_id.assign(row[1].c_str(), row[1].size());
  e.stream_version = row[2].as<uint64_t>();
  e.event_id.assign(row[3].c_str(), row[3].size());
  e.type.assign(row[4].c_str(), row[4].size());
  e.data = ByteaField(row[5]);
  e.metadata = ByteaField(row[6]);
  e.content_type.assign(row[7].c_str(), row[7].size());
  e.correlation_id.assign(row[8].c_str(), row[8].size());
  e.causation_id.assign(row[9].c_str(), row[9].size());
  e.recorded_at = FromEpochText(row[10]);
  if (!row[11].is_null()) e.schema_version = row[11].as<uint32_t>();
  if (!row[12].is_null()) e.redaction_reason = row[12].as<std::string>();
  e.tenant.assign(row[13].c_str(), row[13].size());
  e.written_by.assign(row[14].c_str(), row[14].size());
  e.traceparent.assign(row[15].c_str(), row[15].size());
}

std::vector<RecordedEvent> ToEvents(const pqxx::result& rows) {
  std::vector<RecordedEvent> events;
  events.reserve(rows.size());
  for (const auto& row : rows) ToEvent(row, events.emplace_back());
  return events;
}

}  // namespace logbook::store
