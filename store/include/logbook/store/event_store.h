// The event store: appends and reads events in PostgreSQL.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "logbook/store/checkpoints.h"
#include "logbook/store/limits.h"
#include "logbook/store/observer.h"
#include "logbook/store/types.h"

namespace logbook::store {

// Payload key on an ABORTED status from Append: the stream's actual version
// as decimal text; absent when the stream does not exist.
inline constexpr char kActualVersionPayload[] = "logbook-actual-version";

struct StoreOptions {
  std::string dsn;                          // libpq connection string or URL.
  // For admin calls (RedactEvent) only: a role granted logbook_redactor.
  // Empty: dsn.
  std::string admin_dsn;
  int pool_size = 8;                        // Database connections at most.
  absl::Duration acquire_timeout = absl::Seconds(5);  // Wait for a connection.
  int max_waiters = 1024;                   // Callers queued for a connection.
  size_t append_writers = 3;                // Connections writing appends at once.
  size_t group_commit_max_appends = 500;    // Appends sharing one transaction, at most.
  size_t group_commit_max_bytes = 16 << 20; // Their data + metadata, at most.
  size_t snapshots_kept = 3;                // Newest snapshots kept per stream.
  // Verifying $all holds this many streams' chains (about 170 bytes each)
  // in memory at most; more streams cost one more pass over the log each.
  size_t verify_streams_per_pass = 500000;
  // Signs checkpoints (CreateCheckpoint); verifying $all checks the log
  // against every checkpoint it signed. Null: neither.
  std::shared_ptr<const SigningKey> signing_key;
  // Consumer groups: a member is live while its instance renews it within
  // this (3 s to 1 hour); its streams and leases then move to others.
  absl::Duration member_timeout = absl::Seconds(10);
  Limits limits;
  // Told of group commits and pooled connections (metrics). Null: nobody.
  std::shared_ptr<StoreObserver> observer;
};

// The system stream that records deletions and redactions.
inline constexpr char kAuditStream[] = "$audit";

// One verification of receipts in progress (see EventStore::StartVerify).
// Not thread-safe: one caller at a time, though successive Steps may run on
// different threads. Holds no database connection between Steps.
class Verification {
 public:
  virtual ~Verification() = default;
  // Checks up to about `max_events` more events. Returns true when finished:
  // everything was checked, or report().first_broken is set. Errors as
  // EventStore's; a failed Step may be retried.
  virtual absl::StatusOr<bool> Step(size_t max_events) = 0;
  virtual const VerifyReport& report() const = 0;
};

// An event store on PostgreSQL.
//
// Thread-safe: all methods may be called concurrently from any thread. Each
// call blocks its thread for the database round trips it needs.
//
// Errors, as absl::Status codes:
//   INVALID_ARGUMENT / RESOURCE_EXHAUSTED  bad input or a limit; nothing changed
//   ABORTED            expected version mismatch (see kActualVersionPayload)
//   ALREADY_EXISTS     an event id is stored elsewhere
//   NOT_FOUND          a read of a stream that does not exist
//   UNAVAILABLE        the database cannot be reached, or no connection was
//                      free before StoreOptions::acquire_timeout; retry
//   UNKNOWN            the connection broke during commit: the append may or
//                      may not be stored (retrying with the same event ids
//                      is safe)
//   INTERNAL           anything else, logged with its SQLSTATE
class EventStore {
 public:
  // Connects to the database in `options.dsn`. Does not check the schema
  // version; see migrations.h CheckSchema. Returns UNAVAILABLE when the
  // database cannot be reached.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(const StoreOptions& options);

  virtual ~EventStore() = default;

  // Appends `events` to `stream_id`, all or nothing, as written by `writer`
  // (stored with each event and covered by its receipt). Event ids that are
  // empty are generated; result.event_ids holds them all. Blocks until the
  // append is durable or failed.
  absl::StatusOr<AppendResult> Append(absl::string_view stream_id, ExpectedVersion expected,
                                      std::vector<NewEvent> events, Writer writer = {});

  // Append without blocking: returns at once and calls `done` exactly once,
  // on this thread when the input is invalid, otherwise on a thread of the
  // store's once the append is durable or failed. `done` must not block.
  using AppendDone = std::function<void(absl::StatusOr<AppendResult>)>;
  virtual void AppendAsync(absl::string_view stream_id, ExpectedVersion expected,
                           std::vector<NewEvent> events, Writer writer, AppendDone done) = 0;

  // Reads up to max_count events of one stream.
  virtual absl::StatusOr<std::vector<RecordedEvent>> ReadStream(const ReadStreamQuery& query) = 0;

  // Reads up to max_count events of the global log matching the filter.
  virtual absl::StatusOr<std::vector<RecordedEvent>> ReadAll(const ReadAllQuery& query) = 0;

  virtual absl::StatusOr<StreamInfo> GetStream(absl::string_view stream_id,
                                               absl::string_view tenant = kDefaultTenant) = 0;

  // Streams, in stream id order (including deleted ones, with their
  // state). INVALID_ARGUMENT for a max_count over kMaxListCount.
  virtual absl::StatusOr<std::vector<StreamInfo>> ListStreams(const ListQuery& query) = 0;

  // Categories of the streams that have events (a category is a stream
  // id up to its first '-'), in order; query.after is a category.
  virtual absl::StatusOr<std::vector<std::string>> ListCategories(const ListQuery& query) = 0;

  // Soft-deletes (tombstone false) or tombstones a stream and records a
  // StreamDeleted event in $audit written by `writer`, in one transaction. ABORTED: wrong
  // expected version; NOT_FOUND: no such stream (or already soft-deleted);
  // FAILED_PRECONDITION: tombstoned.
  virtual absl::StatusOr<DeleteResult> DeleteStream(absl::string_view stream_id,
                                                    ExpectedVersion expected, bool tombstone,
                                                    const Writer& writer) = 0;

  // Empties the data and metadata of one event, marks it redacted with
  // `reason`, and records an EventRedacted event in $audit written by
  // `writer`, in one transaction. NOT_FOUND: no such event; FAILED_PRECONDITION: already
  // redacted or in a system stream. Authorization is the caller's job. Runs
  // on a connection to StoreOptions::admin_dsn (logbook.redact).
  virtual absl::StatusOr<RedactResult> RedactEvent(absl::string_view stream_id,
                                                   uint64_t stream_version,
                                                   absl::string_view reason,
                                                   const Writer& writer) = 0;

  // Stores a snapshot (replacing one with the same stream, version and
  // schema version) with the stream's receipt hash at its version and its
  // state's digest, signed with StoreOptions::signing_key if there is one,
  // and keeps the newest StoreOptions::snapshots_kept of the stream.
  // created_at is ignored and set. NOT_FOUND: no such stream;
  // FAILED_PRECONDITION: the version is beyond the stream's head.
  virtual absl::StatusOr<Snapshot> SaveSnapshot(const Snapshot& snapshot) = 0;

  // The newest matching snapshot (with a signing key: the newest it signed);
  // NOT_FOUND when there is none. DATA_LOSS when its state no longer
  // matches its digest, the stream's receipt at its version is no longer
  // the one it was computed from, or its signature does not verify.
  virtual absl::StatusOr<Snapshot> LoadSnapshot(const SnapshotQuery& query) = 0;

  // Starts verifying the receipts of `tenant`'s stream `stream_id`, or of
  // its whole log when it is empty (VerifyReport::whole_log says whether
  // the log's positions and checkpoints could be checked too). NOT_FOUND:
  // no such stream.
  virtual absl::StatusOr<std::unique_ptr<Verification>> StartVerify(
      absl::string_view stream_id, absl::string_view tenant = kDefaultTenant) = 0;

  // Signs a checkpoint of the whole log, every tenant's (on the admin
  // connection, whose role must be a member of logbook_all_tenants), at its head now (StoreOptions::
  // signing_key), from the newest checkpoint it signed on, and returns it;
  // the newest checkpoint when the head has not moved since.
  // FAILED_PRECONDITION: no signing key.
  virtual absl::StatusOr<Checkpoint> CreateCheckpoint() = 0;

  // The newest checkpoint, whoever signed it; NOT_FOUND when there is none.
  virtual absl::StatusOr<Checkpoint> LatestCheckpoint() = 0;

  // OK when PostgreSQL's row-level security binds both this store's role
  // (StoreOptions::dsn) and the owner of the schema, whose SECURITY DEFINER
  // functions write: neither is a superuser nor has BYPASSRLS. Only then do
  // tenants other than the default one stay apart in PostgreSQL.
  // FAILED_PRECONDITION naming the role otherwise.
  virtual absl::Status CheckTenantIsolation() = 0;

  // The global position of the newest event (0 for an empty log). Every
  // event at or below it is committed and visible to any later read.
  virtual absl::StatusOr<uint64_t> HeadPosition() = 0;

  virtual const Limits& limits() const = 0;
};

}  // namespace logbook::store
