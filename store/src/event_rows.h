// Events as the store's reads return them, shared by every reader of
// logbook.event_log rows. Pure.
#pragma once

#include <pqxx/pqxx>

#include <vector>

#include "logbook/store/types.h"

// The columns ToEvents reads, in its order: SELECT LOGBOOK_EVENT_COLUMNS FROM
// logbook.event_log ...
#define LOGBOOK_EVENT_COLUMNS                                                          \
  "global_position, stream_id, stream_version, event_id::text, event_type, data, "     \
  "metadata, content_type, coalesce(correlation_id, ''), coalesce(causation_id, ''), " \
  "extract(epoch FROM recorded_at), schema_version, redaction_reason, tenant, "        \
  "coalesce(written_by, ''), coalesce(traceparent, '')"

namespace logbook::store {

// How many LOGBOOK_EVENT_COLUMNS there are: the index of a column after them.
inline constexpr int kEventColumns = 16;

// Sets `event` from `row` (every field).
void ToEvent(const pqxx::row& row, RecordedEvent& event);
std::vector<RecordedEvent> ToEvents(const pqxx::result& rows);

}  // namespace logbook::store
