// Plain value types of the event store. No gRPC or libpqxx types here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "logbook/store/checkpoints.h"

namespace logbook::store {

// What the appender believes the stream's version is.
struct ExpectedVersion {
  enum class Kind { kAny, kNoStream, kStreamExists, kExact };
  Kind kind = Kind::kAny;
  uint64_t version = 0;  // Only for kExact: the version of the last event.

  static ExpectedVersion Any() { return {Kind::kAny, 0}; }
  static ExpectedVersion NoStream() { return {Kind::kNoStream, 0}; }
  static ExpectedVersion StreamExists() { return {Kind::kStreamExists, 0}; }
  static ExpectedVersion Exact(uint64_t v) { return {Kind::kExact, v}; }
};

inline constexpr char kJsonContentType[] = "application/json";

// Tenants (docs/security.md "Tenants"): every stream, event and snapshot is
// one tenant's, and each call of the store names whose it reads or writes;
// stream ids and event ids are unique per tenant. A tenant's name is 1 to 64
// bytes of [A-Za-z0-9._-], starting with a letter or digit
// (ValidateTenant). Every row written before tenants existed, and every
// call that names none, is the default tenant's.
inline constexpr char kDefaultTenant[] = "default";
// What a read may name instead of a tenant: every tenant's events
// (ReadAllQuery only: the live tail). It runs on the admin connection,
// whose role must be a member of logbook_all_tenants.
inline constexpr char kAllTenants[] = "*";
// The principal of a caller of the store in its own process (tests, tools),
// which no logbookd authenticated.
inline constexpr char kLocalPrincipal[] = "local";

// Who appends (or deletes or redacts, for the $audit event that records
// it): logbookd sets it from the authenticated caller, never from what a
// client sends. Each event stores it, and its receipt covers it
// (logbook-receipt-v2, docs/receipts.md).
struct Writer {
  std::string principal = kLocalPrincipal;  // 1 to Limits::max_principal_bytes bytes.
  std::string tenant = kDefaultTenant;
};

// An event as the appender provides it.
struct NewEvent {
  std::string event_id;  // Canonical UUID; empty: the store generates one.
  std::string type;
  std::string data;      // Bytes.
  std::string metadata;  // Bytes.
  std::string content_type = kJsonContentType;
  std::string correlation_id;
  std::string causation_id;
  std::optional<uint32_t> schema_version = std::nullopt;  // Unset: none.
  // The W3C trace context of the request that appends it
  // (ValidateTraceparent); empty: none. Not covered by the receipt.
  std::string traceparent;
};

struct AppendResult {
  uint64_t first_version = 0;
  uint64_t last_version = 0;
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  absl::Time committed_at;
  std::vector<std::string> event_ids;  // As stored, in request order.
  bool duplicate = false;  // True when this was an idempotent retry.
  std::string head_hash = {};  // The stream's head receipt hash (32 bytes) after it.
  uint64_t events_since_snapshot = 0;  // Since the newest snapshot (all without one).
};

// An event as stored, byte for byte.
struct RecordedEvent {
  std::string event_id;
  std::string type;
  std::string data;
  std::string metadata;
  std::string content_type;
  std::string correlation_id;
  std::string causation_id;
  std::string stream_id;
  uint64_t stream_version = 0;
  uint64_t global_position = 0;
  absl::Time recorded_at;
  std::optional<uint32_t> schema_version = std::nullopt;
  // Set when redacted; data and metadata are then empty.
  std::optional<std::string> redaction_reason = std::nullopt;
  std::string tenant;
  // The principal that wrote it; empty for events stored before writers
  // were recorded (their receipts are logbook-receipt-v1).
  std::string written_by;
  std::string traceparent;  // As appended; empty: none.
};

enum class Direction { kForward, kBackward };

struct ReadStreamQuery {
  std::string stream_id;
  // Inclusive. Unset: the first event forward, the last event backward.
  std::optional<uint64_t> from_version = std::nullopt;
  Direction direction = Direction::kForward;
  uint64_t max_count = 0;  // 0: Limits::default_read_count.
  // 0: no bound. Otherwise the read stops after the event that brings the
  // data + metadata bytes read to max_bytes or past it (so at least one
  // event, and at most max_bytes - 1 + one event's bytes); PostgreSQL sends
  // nothing beyond it.
  size_t max_bytes = 0;
  // Time travel: only events at or below this version / recorded at or
  // before this time, in either direction.
  std::optional<uint64_t> until_version = std::nullopt;
  std::optional<absl::Time> until_time = std::nullopt;
  std::string tenant = kDefaultTenant;
};

// Empty fields select everything; set fields combine with AND.
struct EventFilter {
  std::string stream_id;  // Exactly this stream.
  std::string stream_prefix;
  std::string category;  // Stream id part before the first '-'.
  std::vector<std::string> event_types;
  // Also only streams within one of these scopes: "orders-*" (stream ids
  // starting with "orders-") or "payments" (that category). Empty: no such
  // bound. logbookd sets it for a caller limited to several scopes
  // (docs/security.md); clients cannot.
  std::vector<std::string> scopes;
};

// Whether `scope` ("orders-*" or "payments") covers stream `stream_id`. Pure.
bool ScopeCovers(absl::string_view scope, absl::string_view stream_id);

struct ReadAllQuery {
  // Inclusive. Unset: the first event forward, the last event backward.
  std::optional<uint64_t> from_position = std::nullopt;
  Direction direction = Direction::kForward;
  uint64_t max_count = 0;  // 0: Limits::default_read_count.
  size_t max_bytes = 0;    // 0: no bound; otherwise as ReadStreamQuery::max_bytes.
  EventFilter filter;
  // Time travel: only events at or below this position, in either direction
  // (a backward read starts at the lower of it and from_position).
  std::optional<uint64_t> until_position = std::nullopt;
  // Time travel: only events recorded at or before this time (either direction).
  std::optional<absl::Time> until_time = std::nullopt;
  std::string tenant = kDefaultTenant;  // Or kAllTenants.
};

enum class StreamState { kActive, kSoftDeleted, kTombstoned };

// A page of ListStreams (stream ids) or ListCategories (category names),
// in byte order of the names.
struct ListQuery {
  std::string prefix;      // Names starting with it; "": every one.
  std::string after;       // Names after it; "": from the first.
  uint64_t max_count = 0;  // 0: 1,000; at most kMaxListCount.
  // Only what one of these scopes can reach (EventFilter::scopes); empty:
  // everything.
  std::vector<std::string> scopes;
  std::string tenant = kDefaultTenant;
};
inline constexpr uint64_t kDefaultListCount = 1000;
inline constexpr uint64_t kMaxListCount = 10000;

struct StreamInfo {
  std::string stream_id;
  uint64_t version = 0;
  uint64_t last_position = 0;
  absl::Time created_at;
  std::string head_hash = {};  // Head receipt hash, 32 bytes.
  StreamState state = StreamState::kActive;
  uint64_t first_version = 0;  // First version reads return (after a soft delete: more).
};

struct DeleteResult {
  uint64_t deleted_version = 0;  // The stream's version when deleted.
  uint64_t audit_position = 0;   // Position of the StreamDeleted event in $audit.
};

struct RedactResult {
  uint64_t global_position = 0;  // The redacted event's.
  uint64_t audit_position = 0;   // Position of the EventRedacted event in $audit.
};

struct Snapshot {
  std::string stream_id;
  uint64_t stream_version = 0;
  uint32_t schema_version = 0;
  std::string state = {};  // Bytes.
  absl::Time created_at = {};
  std::string tenant = kDefaultTenant;
};

struct SnapshotQuery {
  std::string stream_id;
  std::optional<uint64_t> max_version = std::nullopt;     // Unset: the newest.
  std::optional<uint32_t> schema_version = std::nullopt;  // Unset: any.
  std::string tenant = kDefaultTenant;
};

// Why verification stopped at an event.
enum class BreakReason {
  kDataChanged,        // Data does not match the receipt's digest.
  kMetadataChanged,    // Metadata does not match the receipt's digest.
  kEventMissing,       // An event the chain or the log expects is gone.
  kEventInserted,      // An event without a receipt, or beyond the recorded head.
  kReceiptChanged,     // A receipt does not match the chain or its event.
  kVersionsOutOfSequence,  // Versions do not follow positions.
  kEventChanged,       // A hashed field of the event was edited.
  kRedactionNotAudited,    // Redacted without an $audit record.
  // An event differs from what a signed checkpoint hashed at its position
  // (changed with its chain recomputed, inserted, or removed: then only the
  // position is sure), or the log up to a checkpoint does not hash to its
  // signed log hash and its record of receipts cannot be trusted
  // (global_position is the checkpoint's).
  kCheckpointMismatch,
  // A checkpoint that says it is signed by the verifying key, but its
  // signature does not verify.
  kCheckpointSignatureInvalid,
  // A stream's row contradicts its newest StreamDeleted record in $audit
  // (a tombstone revived, a deletion undone); the version is the deleted one.
  kStreamStateChanged,
};

struct BrokenEvent {
  std::string stream_id;
  uint64_t stream_version = 0;
  uint64_t global_position = 0;
  BreakReason reason = BreakReason::kReceiptChanged;
  std::string detail = {};  // For humans.
};

struct VerifyReport {
  uint64_t events_checked = 0;
  // $all with a signing key: the checkpoints signed by it that the log was
  // checked against, and the newest of them.
  uint64_t checkpoints_checked = 0;
  std::optional<Checkpoint> latest_checkpoint = std::nullopt;
  uint64_t events_total = 0;    // Known when verification started.
  uint64_t streams_checked = 0;
  // $all: the log's positions (no holes) and its signed checkpoints were
  // checked too, which a tenant can only when it holds the whole log (it is
  // the only tenant); otherwise its streams alone.
  bool whole_log = false;
  std::string head_hash = {};   // Stream target, when ok: the recomputed head.
  std::optional<BrokenEvent> first_broken = std::nullopt;  // Unset: ok (so far).
};

}  // namespace logbook::store
