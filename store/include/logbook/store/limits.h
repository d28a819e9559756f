// Input limits and validation. Pure functions: no database, thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "logbook/store/types.h"

namespace logbook::store {

// Every limit the store enforces; docs/api.md "Limits" lists the same values.
struct Limits {
  size_t max_stream_id_bytes = 256;        // Stream ids: 1..256 bytes.
  size_t max_event_type_bytes = 256;       // Event types: 1..256 bytes.
  size_t max_content_type_bytes = 128;     // Content types: 0..128 bytes.
  size_t max_correlation_id_bytes = 256;   // Correlation/causation ids.
  size_t max_event_bytes = 1 << 20;        // data + metadata of one event: 1 MiB.
  size_t max_batch_events = 1000;          // Events in one Append.
  size_t max_batch_bytes = 4 << 20;        // data + metadata of one Append: 4 MiB.
  uint64_t default_read_count = 1000;      // max_count 0 means this.
  uint64_t max_read_count = 100000;        // Largest max_count accepted.
  size_t max_filter_event_types = 100;     // Event types in one filter.
  size_t max_snapshot_bytes = 4 << 20;     // State of one snapshot: 4 MiB.
  size_t max_reason_bytes = 1024;          // A redaction's reason: 1..1024 bytes.
  size_t max_principal_bytes = 256;        // A writer's principal: 1..256 bytes.
};

// Checks a text field: valid UTF-8, no control characters, min..max bytes;
// INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateText(absl::string_view field, absl::string_view text, size_t min_bytes,
                          size_t max_bytes);

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates).
bool IsValidUtf8(absl::string_view s);

// Parses a UUID in canonical 8-4-4-4-12 hex form (either case) and returns it
// lowercased, or INVALID_ARGUMENT naming `field`.
absl::StatusOr<std::string> CanonicalUuid(absl::string_view field, absl::string_view text);

// True for "application/json", any case, optionally with parameters
// ("application/json; charset=utf-8").
bool IsJsonContentType(absl::string_view content_type);

// Checks a stream id: 1..max bytes of UTF-8 without control characters.
// `field` names it in the error (e.g. "stream_id").
absl::Status ValidateStreamId(const Limits& limits, absl::string_view field,
                              absl::string_view stream_id);

// INVALID_ARGUMENT naming `field` unless `value` is a W3C trace context
// traceparent of version 00 (https://www.w3.org/TR/trace-context/): "00-",
// a trace id of 32 lowercase hex digits, "-", a parent id of 16, "-", and
// 2 of flags; neither id all zeros. Pure.
absl::Status ValidateTraceparent(absl::string_view field, absl::string_view value);

// Checks everything about an append except the expected version; fills in
// generated event ids and canonicalizes the given ones. INVALID_ARGUMENT for
// malformed input, RESOURCE_EXHAUSTED for sizes; the message names the field
// (e.g. "events[3].data").
absl::Status ValidateAppend(const Limits& limits, absl::string_view stream_id,
                            std::vector<NewEvent>& events);

// Checks the writer logbookd names for an append, deletion or redaction:
// a principal of 1..max_principal_bytes bytes of UTF-8 without control
// characters, and a tenant (ValidateTenant). INVALID_ARGUMENT naming the
// field otherwise.
absl::Status ValidateWriter(const Limits& limits, const Writer& writer);

// OK when `tenant` names a tenant (types.h kDefaultTenant): 1 to
// kMaxTenantBytes bytes of [A-Za-z0-9._-], the first a letter or digit.
// INVALID_ARGUMENT naming `field` otherwise. Pure.
inline constexpr size_t kMaxTenantBytes = 64;
absl::Status ValidateTenant(absl::string_view field, absl::string_view tenant);

// Checks max_count and the filter of a read.
absl::Status ValidateReadCount(const Limits& limits, uint64_t max_count);
absl::Status ValidateFilter(const Limits& limits, const EventFilter& filter);

}  // namespace logbook::store
