// Deciding appends: which of a group of appends are written, which are
// idempotent retries, which fail and why, where their events go and what
// their receipts are. Pure functions over plain values: no database, no
// clock; thread-safe. append_writer.h loads their inputs and writes their
// outputs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "logbook/store/types.h"

namespace logbook::store {

// One append, validated (ValidateAppend: event ids canonical, sizes
// checked), with what hashing needs precomputed (PrepareAppend).
struct AppendInput {
  std::string stream_id;
  ExpectedVersion expected;
  std::vector<NewEvent> events;
  Writer writer;
  size_t bytes = 0;  // Data + metadata of all events.
  // Per event: its id's 16 bytes, then SHA-256 of its data and of its
  // metadata (kIdAndDigestsBytes each).
  std::string id_and_digests = {};

  absl::string_view event_id_bytes(size_t i) const;
  absl::string_view data_digest(size_t i) const;
  absl::string_view metadata_digest(size_t i) const;
};
inline constexpr size_t kIdAndDigestsBytes = 16 + 2 * 32;

// An AppendInput for validated `events`: sums the sizes and hashes the
// payloads. Run it on the caller's thread.
AppendInput PrepareAppend(std::string stream_id, ExpectedVersion expected,
                          std::vector<NewEvent> events, Writer writer);

// A stream's row as a writer sees it: loaded under its lock, or as this
// process last wrote it.
struct StreamHead {
  bool exists = false;
  uint64_t version = 0;
  uint64_t last_position = 0;
  std::string head_hash;  // 32 bytes.
  StreamState state = StreamState::kActive;
  uint64_t first_version = 0;
  std::optional<uint64_t> snapshot_version;  // The newest usable snapshot's, if any.
  // Loaded under the stream's lock (load_for_append): the version of its
  // last event in the log, which must be `version`. Unset when not loaded.
  std::optional<uint64_t> last_event_version;
};

// Where a stored event id is. The view points into the caller's data,
// which must outlive the plan made from it.
struct StoredEvent {
  absl::string_view stream_id;
  uint64_t version = 0;
  uint64_t position = 0;
  int64_t recorded_at_micros = 0;
};
using StoredEvents = absl::flat_hash_map<absl::string_view, StoredEvent>;

// "version 3", "no stream", ...: for messages.
std::string Describe(ExpectedVersion expected);

// OK when `expected` holds for `stream`: kAny always; kNoStream when it does
// not exist or is deleted; kStreamExists when it is active; kExact N when it
// is active at version N. Otherwise ABORTED saying what the stream is, with
// its version as the payload kActualVersionPayload when it is active.
absl::Status CheckExpectedVersion(absl::string_view stream_id, ExpectedVersion expected,
                                  const StreamHead& stream);

// OK when `stream` may be deleted (soft, or for good with `tombstone`):
// NOT_FOUND when it does not exist, or is already soft-deleted and this is
// not a tombstone; FAILED_PRECONDITION when it is tombstoned; else the
// expected version must hold as for an append, and kNoStream never does
// (ABORTED).
absl::Status CheckDelete(absl::string_view stream_id, ExpectedVersion expected, bool tombstone,
                         const StreamHead& stream);

// Events a reader replays on top of the newest snapshot: every readable one
// (from first_version on) when there is none.
uint64_t EventsSinceSnapshot(const StreamHead& stream);

// A group of appends decided against its streams' heads and the stored
// event ids: each append's outcome and what the group writes. Positions of
// written events count from 1 (the group's first) until Finish() places
// them.
struct AppendPlan {
  // Per append, in request order:
  std::vector<absl::StatusOr<AppendResult>> results;
  std::vector<bool> written;  // Its events are written by this group.
  // Appends that retry events an earlier append of this group writes.
  std::vector<size_t> retries_in_group;

  size_t events = 0;                      // Events written.
  std::vector<std::string> heads;         // Streams written, in first-write order.
  std::map<std::string, StreamHead> before;  // Every stream of the group, as given.
  std::map<std::string, StreamHead> after;   // After the group (heads' hashes: Finish).
  std::map<std::string, uint64_t> last_event;  // Per written stream: its last event's place.

  // Whether every append is written or a retry: nothing for the database
  // to decide under the streams' locks.
  bool AllAccepted() const;
};

// Decides each of `appends` in order, against `streams` (every stream of
// the group; missing ones with exists = false) and `stored` (the appends'
// event ids already stored; may be empty when they were not looked up):
//   an idempotent retry   every event id is stored (or written earlier in the
//                         group) in this stream at the versions this append
//                         would give them, and the expected version fits
//                         those: OK with the original positions, nothing written
//   ALREADY_EXISTS        some id is stored anywhere else
//   DATA_LOSS             the stream's row and its last event disagree on its
//                         version (the row was edited behind logbookd's back)
//   FAILED_PRECONDITION   the stream is tombstoned
//   ABORTED               the expected version does not hold (CheckExpectedVersion)
//   written               otherwise: the events continue the stream's versions,
//                         and later appends of the group see the stream after them.
AppendPlan PlanAppends(const std::vector<const AppendInput*>& appends,
                       std::map<std::string, StreamHead> streams, const StoredEvents& stored);

// The receipts of a plan's written events, in write order, chained from
// each stream's head in `plan.before` (zeros for a new stream), with
// recorded_at `recorded_at_micros`.
struct GroupReceipts {
  std::vector<std::string> previous_hashes;  // Per written event.
  std::vector<std::string> hashes;           // Per written event.
  std::map<std::string, std::string> heads;  // Per written stream: its last event's hash.
};
GroupReceipts HashReceipts(const AppendPlan& plan, const std::vector<const AppendInput*>& appends,
                           int64_t recorded_at_micros);

// Completes the plan of `appends` once its events are stored from
// `first_position` on at `recorded_at_micros` with `receipts` (when nothing
// was written: any position and time, empty receipts):
// places written events and retries of them, sets committed_at and each OK
// result's head hash (its stream's after the append), the written streams'
// heads in `after`, their newest snapshots from `snapshots` (written stream
// -> its newest usable snapshot version) and each written append's
// events_since_snapshot.
void FinishPlan(AppendPlan& plan, const std::vector<const AppendInput*>& appends,
                const GroupReceipts& receipts, uint64_t first_position,
                int64_t recorded_at_micros,
                const std::map<std::string, std::optional<uint64_t>>& snapshots);

}  // namespace logbook::store
