// Consumer groups (docs/consumer-groups.md): competing consumers sharing the
// events of a target, each event handled by one of them, with every bit of
// state in PostgreSQL (migrations/0016) so that a group survives restarts
// and serves consumers connected to several logbookd instances at once.
//
// ConsumerGroups is the store's side: definitions, and the steps a
// logbookd instance takes for the consumers connected to it (join, fill,
// claim, ack, nack, leave). Scheduling those steps is the service's job
// (service/src/consumer_group_hub.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "logbook/store/event_store.h"
#include "logbook/store/types.h"

namespace logbook::store {

enum class GroupStrategy { kPerStream, kRoundRobin };

struct GroupSettings {
  GroupStrategy strategy = GroupStrategy::kPerStream;
  absl::Duration ack_timeout = absl::Seconds(30);
  uint32_t max_deliveries = 10;
  absl::Duration retry_backoff = absl::Seconds(1);
  absl::Duration retry_backoff_max = absl::Seconds(60);
  uint32_t max_in_flight = 100;
};

// Settings a request sets; unset ones keep their value (or the default).
struct GroupSettingsPatch {
  std::optional<GroupStrategy> strategy;
  std::optional<uint32_t> ack_timeout_ms;
  std::optional<uint32_t> max_deliveries;
  std::optional<uint32_t> retry_backoff_ms;
  std::optional<uint32_t> retry_backoff_max_ms;
  std::optional<uint32_t> max_in_flight;
};

// `base` with `patch` applied; INVALID_ARGUMENT naming the field (as
// "settings.ack_timeout_ms") when a value is out of its range (the proto's
// comments). Pure.
absl::StatusOr<GroupSettings> ApplySettings(const GroupSettings& base,
                                            const GroupSettingsPatch& patch);

// INVALID_ARGUMENT naming `field` unless `name` is 1 to 128 bytes of
// [A-Za-z0-9._-]. Pure.
absl::Status ValidateGroupName(absl::string_view field, absl::string_view name);

// How long a retry of an event delivered `attempts` times waits:
// retry_backoff doubling per delivery after the first, at most
// retry_backoff_max. Pure.
absl::Duration RetryDelay(const GroupSettings& settings, uint32_t attempts);

// Where a new group starts.
struct GroupStart {
  enum Kind { kBeginning, kAfterPosition, kNow } kind = kBeginning;
  uint64_t after_position = 0;
};

struct GroupDefinition {
  std::string name;    // Without its tenant.
  std::string tenant;  // Whose group it is.
  // stream_id or category set (or neither: the whole log), with
  // stream_prefix and event_types narrowing it.
  EventFilter target;
  GroupSettings settings;
  absl::Time created_at;
};

struct GroupMember {
  std::string consumer;
  std::string instance;
  uint64_t in_flight = 0;
  uint64_t streams_owned = 0;
  absl::Time connected_at;
};

struct GroupInfo {
  GroupDefinition definition;
  uint64_t checkpoint = 0;
  uint64_t head_position = 0;
  uint64_t lag_events = 0;
  absl::Duration lag = absl::ZeroDuration();
  std::vector<GroupMember> members;
  uint64_t in_flight = 0;
  uint64_t parked = 0;
  uint64_t delivered = 0;
  uint64_t acked = 0;
  absl::Duration oldest_parked_age = absl::ZeroDuration();
};

// One event handed to a consumer.
struct GroupDelivery {
  RecordedEvent event;  // Its global position is the delivery id.
  uint32_t attempt = 0;  // 1 for the first delivery.
};

// Which streams of a PER_STREAM group a consumer owns now (see Assignment).
struct StreamAssignment {
  std::vector<std::string> members;  // The live members they are spread over.
  uint64_t streams_owned = 0;
  std::vector<std::string> stream_ids;  // The first few owned, sorted.
};

enum class NackAction { kRetry, kPark, kSkip };

struct ParkedEntry {
  uint64_t delivery_id = 0;  // The event's global position.
  std::string stream_id;
  uint64_t stream_version = 0;
  std::string event_type;
  uint32_t attempts = 0;
  std::string reason;
  absl::Time parked_at;
};

// Which parked events ReplayParked and DropParked take: the ids named, or
// (ids empty) all, oldest first, at most max_count (0: every one).
struct ParkedSelection {
  std::vector<uint64_t> ids;
  uint64_t max_count = 0;
};

// StoreOptions::member_timeout's bounds: an instance renews its members
// (Heartbeat) every second.
inline constexpr absl::Duration kMinMemberTimeout = absl::Seconds(3);
inline constexpr absl::Duration kMaxMemberTimeout = absl::Hours(1);

// A group as the store knows it: its tenant's name for it, qualified by
// the tenant unless that is the default one ("orders-worker",
// "acme/orders-worker"). Group names and tenants never hold '/'. Every
// `group` and `name` of ConsumerGroups below is a key; what it returns
// (GroupDefinition::name, messages) names the group without its tenant.
// The database holds the key in group_name (migrations/0022). Pure.
std::string GroupKey(absl::string_view tenant, absl::string_view name);
// The tenant and the name of a key. Pure.
std::string TenantOfGroup(absl::string_view key);
std::string NameOfGroup(absl::string_view key);

// Thread-safe; every call blocks for its database round trips. Errors as
// EventStore's, and NOT_FOUND for a group that does not exist. It keeps in
// memory which events of its sessions' ROUND_ROBIN leases are settled, so
// one object serves one logbookd instance; the leases of an instance that
// dies go back to the group once they are past their deadline (their acked
// events then are delivered again: at-least-once).
class ConsumerGroups {
 public:
  // Where the events of a ROUND_ROBIN lease ending at position `through`
  // are read (a replica that has replayed them all, say): the store
  // returned, or the groups' own connection when null. Called on the
  // caller's thread of Claim; may query; must be thread-safe.
  using LeaseEventsStore = std::function<EventStore*(uint64_t through)>;

  // Its own few connections to options.dsn. Each call runs with
  // logbook.tenant set to its group's tenant (migrations/0022): a group
  // sees and delivers its tenant's events only. The leases' events come
  // from `lease_events` (none: the same connections); a store that returns
  // fewer of them than the lease holds (a replica that lost a race with a
  // deletion, say) is passed over for the groups' own connection.
  static absl::StatusOr<std::unique_ptr<ConsumerGroups>> Open(
      const StoreOptions& options, LeaseEventsStore lease_events = nullptr);
  virtual ~ConsumerGroups() = default;

  // ALREADY_EXISTS: a group of that name; INVALID_ARGUMENT naming the field.
  virtual absl::StatusOr<GroupDefinition> Create(const std::string& name,
                                                 const EventFilter& target, GroupStart start,
                                                 const GroupSettingsPatch& settings) = 0;
  virtual absl::StatusOr<GroupDefinition> Update(const std::string& name,
                                                 const GroupSettingsPatch& settings) = 0;
  virtual absl::Status Delete(const std::string& name) = 0;
  // The groups of `tenant`.
  virtual absl::StatusOr<std::vector<GroupInfo>> List(absl::string_view tenant) = 0;
  // The tenants that may have groups: 'default' and every tenant that has
  // written a stream (logbook.tenants), in name order. A group of a tenant
  // that has written nothing yet has nothing to deliver.
  virtual absl::StatusOr<std::vector<std::string>> Tenants() = 0;
  virtual absl::StatusOr<GroupInfo> Get(const std::string& name) = 0;

  // --- What an instance does for its connected consumers. `instance`
  // names the logbookd instance; a consumer's call is its session,
  // "<instance>/<n>", and its deliveries are held in its name and session.

  // Records `consumer` as connected in `session`. ALREADY_EXISTS when a
  // live member of that name is connected on another instance; one of this
  // instance is taken over (the caller checked that no call of its own
  // holds the name), and what an earlier session held comes back.
  virtual absl::StatusOr<GroupDefinition> Join(const std::string& group,
                                               const std::string& consumer,
                                               const std::string& session) = 0;
  // Renews the members of `instance` named in `consumers` and returns the
  // group's live members' names, sorted (PER_STREAM spreads streams over
  // them).
  virtual absl::StatusOr<std::vector<std::string>> Heartbeat(
      const std::string& group, const std::string& instance,
      const std::vector<std::string>& consumers) = 0;
  // Forgets the session and hands back what it held (each counted: each
  // was a delivery).
  virtual absl::Status Leave(const std::string& group, const std::string& consumer,
                             const std::string& session) = 0;
  // Takes back the leases of instances that are gone (still there
  // kLeaseGrace after their deadline); for a PER_STREAM group brings up to
  // `max_events` more events of the target, up to the log's head, into its
  // pending events; and moves the checkpoint up to what is done (for a
  // ROUND_ROBIN group at most once a second: a call sooner does nothing).
  // Returns whether there is nothing left to bring in (always, for
  // ROUND_ROBIN).
  virtual absl::StatusOr<bool> Fill(const std::string& group, size_t max_events) = 0;
  // Delivers to `consumer` up to `max` less what it holds: waiting events
  // whose time has come, and ones whose lease ran out; PER_STREAM only each
  // stream's lowest pending event, nothing of a stream in flight, and only
  // streams that hashing over `members` gives this consumer. An event
  // already delivered max_deliveries times is parked instead. ROUND_ROBIN
  // then fills the rest with the target's next events as one lease
  // (migrations/0018), which this object keeps the book of in memory: what
  // of it is settled, and when it is due back (the session's leases past
  // their deadline go back at its next Claim).
  virtual absl::StatusOr<std::vector<GroupDelivery>> Claim(
      const std::string& group, const std::string& consumer, const std::string& session,
      const std::vector<std::string>& members, size_t max) = 0;
  // FAILED_PRECONDITION naming the first id the session does not hold;
  // nothing changes then.
  virtual absl::Status Ack(const std::string& group, const std::string& consumer,
                           const std::string& session, const std::vector<uint64_t>& ids) = 0;
  // Ack, then (PER_STREAM) the next event of each stream acked, claimed for
  // the consumer at once when Claim would give it to it (free and due,
  // nothing else of its stream in flight, hashed to it over the live
  // members): the deliveries to send it next, so that a stream need not
  // wait for the next Claim. Errors as Ack's; nothing follows a ROUND_ROBIN
  // ack. What a session that left meanwhile was given goes back as the rest
  // of what it held (Leave).
  virtual absl::StatusOr<std::vector<GroupDelivery>> AckAndContinue(
      const std::string& group, const std::string& consumer, const std::string& session,
      const std::vector<uint64_t>& ids) = 0;
  virtual absl::Status Nack(const std::string& group, const std::string& consumer,
                            const std::string& session, const std::vector<uint64_t>& ids,
                            NackAction action, std::optional<absl::Duration> delay,
                            const std::string& reason) = 0;
  // PER_STREAM: the streams with pending events that are `consumer`'s with
  // `members` live: the ones it holds something of in flight, and the ones
  // nobody does that hashing gives it (as Claim does); the first
  // `max_streams` of them by id. nullopt for a ROUND_ROBIN group.
  virtual absl::StatusOr<std::optional<StreamAssignment>> Assignment(
      const std::string& group, const std::string& consumer,
      const std::vector<std::string>& members, size_t max_streams) = 0;
  // When the next waiting event of the group is due (lease or retry), if
  // any is waiting.
  virtual absl::StatusOr<std::optional<absl::Time>> NextDue(const std::string& group) = 0;

  // --- Parked events.
  virtual absl::StatusOr<std::vector<ParkedEntry>> ListParked(const std::string& group,
                                                               uint64_t after,
                                                               size_t max_count) = 0;
  // Put back for delivery (attempts reset), in batches: bounded memory.
  virtual absl::StatusOr<uint64_t> ReplayParked(const std::string& group,
                                                const ParkedSelection& selection) = 0;
  virtual absl::StatusOr<uint64_t> DropParked(const std::string& group,
                                              const ParkedSelection& selection) = 0;
};

}  // namespace logbook::store
