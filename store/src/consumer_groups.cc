#include "logbook/store/consumer_groups.h"

#include <algorithm>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "connection_pool.h"
#include "event_rows.h"
#include "lease_book.h"
#include "logbook/store/status_macros.h"
#include "pg_array.h"
#include "pg_errors.h"
#include "run_book.h"

namespace logbook::store {

// --- Pure rules.

absl::Status ValidateGroupName(absl::string_view field, absl::string_view name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 1 to 128 bytes, not ", name.size()));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only letters, digits, '.', '_' and '-' are allowed"));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status InRange(absl::string_view field, uint32_t value, uint32_t low, uint32_t high) {
  if (value < low || value > high) {
    return absl::InvalidArgumentError(
        absl::StrCat("settings.", field, ": ", value, " is outside ", low, "..", high));
  }
  return absl::OkStatus();
}

uint32_t Millis(absl::Duration d) { return static_cast<uint32_t>(absl::ToInt64Milliseconds(d)); }

}  // namespace

absl::StatusOr<GroupSettings> ApplySettings(const GroupSettings& base,
                                            const GroupSettingsPatch& patch) {
  constexpr uint32_t kHour = 3600000;
  GroupSettings s = base;
  if (patch.strategy) s.strategy = *patch.strategy;
  if (patch.ack_timeout_ms) {
    LOGBOOK_RETURN_IF_ERROR(InRange("ack_timeout_ms", *patch.ack_timeout_ms, 100, kHour));
    s.ack_timeout = absl::Milliseconds(*patch.ack_timeout_ms);
  }
  if (patch.max_deliveries) {
    LOGBOOK_RETURN_IF_ERROR(InRange("max_deliveries", *patch.max_deliveries, 1, 1000));
    s.max_deliveries = *patch.max_deliveries;
  }
  if (patch.retry_backoff_ms) {
    LOGBOOK_RETURN_IF_ERROR(InRange("retry_backoff_ms", *patch.retry_backoff_ms, 0, kHour));
    s.retry_backoff = absl::Milliseconds(*patch.retry_backoff_ms);
  }
  if (patch.retry_backoff_max_ms) {
    LOGBOOK_RETURN_IF_ERROR(
        InRange("retry_backoff_max_ms", *patch.retry_backoff_max_ms, 0, kHour));
    s.retry_backoff_max = absl::Milliseconds(*patch.retry_backoff_max_ms);
  }
  if (s.retry_backoff > s.retry_backoff_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "settings.retry_backoff_ms: ", Millis(s.retry_backoff),
        " is more than retry_backoff_max_ms ", Millis(s.retry_backoff_max)));
  }
  if (patch.max_in_flight) {
    LOGBOOK_RETURN_IF_ERROR(InRange("max_in_flight", *patch.max_in_flight, 1, 10000));
    s.max_in_flight = *patch.max_in_flight;
  }
  return s;
}

absl::Duration RetryDelay(const GroupSettings& settings, uint32_t attempts) {
  absl::Duration delay = settings.retry_backoff;
  for (uint32_t i = 1; i < attempts && delay < settings.retry_backoff_max; ++i) delay *= 2;
  return std::min(delay, settings.retry_backoff_max);
}

namespace {

// --- Statements. Every one names its group in $1.

#define LOGBOOK_GROUP_COLUMNS                                                                \
  "g.group_name, g.target_stream_id, g.target_category, g.filter_stream_prefix,"            \
  " g.filter_event_types, g.strategy, g.ack_timeout_ms, g.max_deliveries,"                  \
  " g.retry_backoff_ms, g.retry_backoff_max_ms, g.max_in_flight,"                           \
  " (extract(epoch FROM g.created_at) * 1000000)::bigint"

// Whether an event_log row e is of group g's target.
#define LOGBOOK_GROUP_TARGET                                                                 \
  " (g.target_stream_id = '' OR e.stream_id = g.target_stream_id)"                          \
  " AND (g.target_category = '' OR e.category = g.target_category)"                         \
  " AND (g.filter_stream_prefix = '' OR starts_with(e.stream_id, g.filter_stream_prefix))"  \
  " AND (cardinality(g.filter_event_types) = 0 OR e.event_type = ANY (g.filter_event_types))"

// $2 target stream, $3 category, $4 prefix, $5 types, $6 strategy, $7..$11
// settings, $12 start after (-1: the head).
constexpr char kCreate[] = "group_create";
constexpr char kCreateSql[] =
    "INSERT INTO logbook.consumer_groups AS g (group_name, target_stream_id, target_category,"
    " filter_stream_prefix, filter_event_types, strategy, ack_timeout_ms, max_deliveries,"
    " retry_backoff_ms, retry_backoff_max_ms, max_in_flight, checkpoint, scanned_to)"
    " SELECT $1, $2, $3, $4, $5::text[], $6, $7, $8, $9, $10, $11, s.at, s.at FROM"
    " (SELECT CASE WHEN $12::bigint < 0 THEN h.last_position ELSE $12::bigint END AS at"
    "  FROM logbook.log_head h) s"
    " ON CONFLICT (group_name) DO NOTHING RETURNING " LOGBOOK_GROUP_COLUMNS;

constexpr char kDefinition[] = "group_definition";
constexpr char kDefinitionSql[] =
    "SELECT " LOGBOOK_GROUP_COLUMNS " FROM logbook.consumer_groups g WHERE g.group_name = $1";
constexpr char kDefinitionForUpdate[] = "group_definition_for_update";
constexpr char kDefinitionForUpdateSql[] =
    "SELECT " LOGBOOK_GROUP_COLUMNS
    " FROM logbook.consumer_groups g WHERE g.group_name = $1 FOR UPDATE";
constexpr char kUpdate[] = "group_update";
constexpr char kUpdateSql[] =
    "UPDATE logbook.consumer_groups SET strategy = $2, ack_timeout_ms = $3, max_deliveries = $4,"
    " retry_backoff_ms = $5, retry_backoff_max_ms = $6, max_in_flight = $7 WHERE group_name = $1";
constexpr char kDelete[] = "group_delete";
constexpr char kDeleteSql[] =
    "DELETE FROM logbook.consumer_groups WHERE group_name = $1 RETURNING 1";
constexpr char kNames[] = "group_names";
constexpr char kNamesSql[] =
    "SELECT group_name FROM logbook.consumer_groups ORDER BY group_name";
// migrations/functions/analyze_consumer_groups.sql.
constexpr char kAnalyze[] = "group_analyze";
constexpr char kAnalyzeSql[] = "SELECT logbook.analyze_consumer_groups()";
constexpr char kTenants[] = "group_tenants";
constexpr char kTenantsSql[] =
    "SELECT 'default' UNION SELECT tenant FROM logbook.tenants ORDER BY 1";

// Where a group stands. The checkpoint is worked out as Fill stores it:
// below the lowest pending event, the lowest lease and the frontier (LEAST
// skips the NULLs of what there is none of). A lease's events count as in
// flight until it closes: which of them are settled only its instance
// knows.
#define LOGBOOK_DONE_TO "least(p.lowest - 1, l.lowest, g.scanned_to)"
constexpr char kState[] = "group_state";
constexpr char kStateSql[] =
    "SELECT greatest(g.checkpoint, " LOGBOOK_DONE_TO
    "), h.last_position,"
    " p.pending + l.events, p.in_flight + l.events, n.delivered, n.acked, k.parked,"
    " coalesce(extract(epoch FROM now() - k.oldest), 0),"
    " coalesce(extract(epoch FROM now() - (SELECT e.recorded_at FROM logbook.event_log e"
    "   WHERE e.global_position > " LOGBOOK_DONE_TO " AND" LOGBOOK_GROUP_TARGET
    "   ORDER BY e.global_position LIMIT 1)), 0),"
    " (SELECT count(*) FROM logbook.event_log e"
    "   WHERE e.global_position > g.scanned_to AND e.global_position <= h.last_position "
    "AND" LOGBOOK_GROUP_TARGET
    ")"
    " FROM logbook.consumer_groups g, logbook.log_head h,"
    " LATERAL (SELECT min(global_position) AS lowest, coalesce(sum(events), 0) AS pending,"
    "   count(*) FILTER (WHERE lease_until > now()) AS in_flight"
    "   FROM logbook.consumer_group_pending WHERE group_name = g.group_name) p,"
    " LATERAL (SELECT min(after_position) AS lowest, coalesce(sum(events), 0) AS events"
    "   FROM logbook.consumer_group_leases WHERE group_name = g.group_name) l,"
    " LATERAL (SELECT count(*) AS parked, min(parked_at) AS oldest"
    "   FROM logbook.consumer_group_parked WHERE group_name = g.group_name) k,"
    " LATERAL (SELECT coalesce(sum(delivered), 0) AS delivered, coalesce(sum(acked), 0) AS acked"
    "   FROM logbook.consumer_group_counters WHERE group_name = g.group_name) n"
    " WHERE g.group_name = $1";
// $2 how long a member stays live without a heartbeat.
constexpr char kMembers[] = "group_members";
constexpr char kMembersSql[] =
    "SELECT m.consumer, split_part(m.session, '/', 1),"
    " (extract(epoch FROM m.connected_at) * 1000000)::bigint,"
    " count(p.global_position) + (SELECT coalesce(sum(l.events), 0)"
    "   FROM logbook.consumer_group_leases l"
    "   WHERE l.group_name = $1 AND l.session = m.session),"
    " count(DISTINCT p.stream_id)"
    " FROM logbook.consumer_group_members m LEFT JOIN logbook.consumer_group_pending p"
    "   ON p.group_name = m.group_name AND p.consumer = m.consumer"
    "   AND p.session = m.session AND p.lease_until > now()"
    " WHERE m.group_name = $1 AND m.seen_at > now() - $2::interval"
    " GROUP BY m.consumer, m.session, m.connected_at ORDER BY m.consumer";

// $2 consumer, $3 session, $4 member timeout, $5 this instance's session
// prefix. A row of that consumer that is no longer live, or is of this
// instance (which checked that no call of its own holds the name), is
// taken over.
constexpr char kJoin[] = "group_join";
constexpr char kJoinSql[] =
    "INSERT INTO logbook.consumer_group_members AS m (group_name, consumer, session)"
    " VALUES ($1, $2, $3) ON CONFLICT (group_name, consumer) DO UPDATE"
    " SET session = excluded.session, connected_at = now(), seen_at = now()"
    " WHERE m.seen_at <= now() - $4::interval OR starts_with(m.session, $5) RETURNING 1";
// $2 this instance's session prefix, $3 consumers.
constexpr char kHeartbeat[] = "group_heartbeat";
constexpr char kHeartbeatSql[] =
    "UPDATE logbook.consumer_group_members SET seen_at = now()"
    " WHERE group_name = $1 AND starts_with(session, $2) AND consumer = ANY ($3::text[])";
constexpr char kLiveMembers[] = "group_live_members";
constexpr char kLiveMembersSql[] =
    "SELECT consumer FROM logbook.consumer_group_members"
    " WHERE group_name = $1 AND seen_at > now() - $2::interval ORDER BY consumer";
// $2 consumer, $3 session (NULL: any other than $4), $5 why. An earlier
// session of this instance ($6, its session prefix) is one whose call
// ended (logbookd lets a name join again only then): what it held went
// away with it, whether its Leave or the new Join gets here first.
constexpr char kRelease[] = "group_release";
constexpr char kReleaseSql[] =
    "UPDATE logbook.consumer_group_pending SET consumer = NULL, session = NULL,"
    " lease_until = NULL, not_before = now(), last_reason = CASE"
    "   WHEN $3 IS NULL AND starts_with(session, $6) THEN 'its consumer went away' ELSE $5 END"
    " WHERE group_name = $1 AND consumer = $2 AND through_version IS NULL"
    " AND (session = $3 OR ($3 IS NULL AND session <> $4))";
constexpr char kLeave[] = "group_leave";
constexpr char kLeaveSql[] =
    "DELETE FROM logbook.consumer_group_members"
    " WHERE group_name = $1 AND consumer = $2 AND session = $3";

// Fill: $2 most events to add. Under the group's row lock, so instances
// fill one after the other.
constexpr char kFillStart[] = "group_fill_start";
constexpr char kFillStartSql[] =
    "SELECT g.scanned_to, h.last_position, (SELECT coalesce(sum(events), 0)"
    "   FROM logbook.consumer_group_pending p WHERE p.group_name = g.group_name)"
    " FROM logbook.consumer_groups g, logbook.log_head h WHERE g.group_name = $1"
    " FOR UPDATE OF g";
// $2 after, $3 through, $4 limit, $5 most events a run: the target's first
// $4 events in (after, through], as runs (migrations/0023): each stream's
// events among them, in version order, cut into runs of at most $5.
// Returns how many events there were and the last one's position.
constexpr char kFillInsert[] = "group_fill_insert";
constexpr char kFillInsertSql[] =
    "WITH picked AS (SELECT e.global_position, e.stream_id, e.stream_version"
    "   FROM logbook.event_log e, logbook.consumer_groups g WHERE g.group_name = $1"
    "   AND e.global_position > $2 AND e.global_position <= $3 AND" LOGBOOK_GROUP_TARGET
    "   ORDER BY e.global_position LIMIT $4),"
    " runs AS (SELECT stream_id, min(global_position) AS first, max(stream_version) AS through,"
    "   count(*) AS n FROM (SELECT p.*, (row_number() OVER (PARTITION BY stream_id"
    "     ORDER BY global_position) - 1) / $5 AS chunk FROM picked p) c"
    "   GROUP BY stream_id, chunk),"
    " added AS (INSERT INTO logbook.consumer_group_pending (group_name, global_position,"
    "   stream_id, through_version, events)"
    "   SELECT $1, first, stream_id, CASE WHEN n > 1 THEN through END, n FROM runs)"
    " SELECT count(*), max(global_position) FROM picked";
// $2 scanned to. Writes the row only when something moves.
constexpr char kFillEnd[] = "group_fill_end";
constexpr char kFillEndSql[] =
    "UPDATE logbook.consumer_groups g SET scanned_to = $2, checkpoint = greatest(g.checkpoint,"
    " t.cp) FROM (SELECT least((SELECT min(global_position) - 1"
    "   FROM logbook.consumer_group_pending p WHERE p.group_name = $1), (SELECT min(after_position)"
    "   FROM logbook.consumer_group_leases l WHERE l.group_name = $1), $2::bigint) AS cp) t"
    " WHERE g.group_name = $1 AND (g.scanned_to <> $2 OR g.checkpoint < t.cp)";

// Claim, one statement: $2 consumer, $3 its session, $4 live members, $5
// most in flight to it, $6 ack timeout ms, $7 max deliveries. What is free
// to claim: waiting and due, or its lease ran out. The consumer's room is
// $5 less what it holds now. Of what it chooses, an event delivered $7
// times already goes to the parked ones instead, with the reason of its
// last failure; the rest is delivered (attempts counted now, before it is
// sent) and returned with the events, in position order.
// How much longer than ack_timeout a run's row (of `p`) is held when
// claimed or renewed: its instance sends the run's events one after the
// other and renews the row while it does (RunBook), so the row outlives
// each event's deadline; only when the instance is gone does it lapse.
#define LOGBOOK_RUN_LEASE(p) \
  "CASE WHEN " p ".through_version IS NULL THEN interval '0' ELSE interval '10 seconds' END"
#define LOGBOOK_CLAIM_ROOM                                                                   \
  "room AS (SELECT greatest(0, $5 - count(*)) AS n FROM logbook.consumer_group_pending"      \
  "   WHERE group_name = $1 AND session = $3 AND session IS NOT NULL"                         \
  "   AND lease_until > now())"
#define LOGBOOK_CLAIMABLE                             \
  " p.not_before <= now() AND (p.lease_until IS NULL" \
  "   OR (p.lease_until <= now() AND p.through_version IS NULL))"
#define LOGBOOK_CLAIM_TAKE \
  " spent AS (DELETE FROM logbook.consumer_group_pending p WHERE p.group_name = $1"      \
  "   AND p.global_position = ANY (ARRAY(SELECT global_position FROM chosen"             \
  "     WHERE attempts >= $7))"                                                          \
  "   RETURNING p.global_position, p.attempts, CASE WHEN p.lease_until IS NOT NULL"      \
  "     THEN 'not acked within ack_timeout' ELSE p.last_reason END AS why),"             \
  " parked AS (INSERT INTO logbook.consumer_group_parked (group_name, global_position,"  \
  "   attempts, reason) SELECT $1, global_position, attempts,"                           \
  "   format('delivered %s times (max_deliveries) without an ack; the last: %s',"        \
  "   attempts, why) FROM spent),"                                                       \
  " claimed AS (UPDATE logbook.consumer_group_pending p SET attempts = p.attempts + 1,"  \
  "   consumer = $2, session = $3, lease_until = now() + $6 * interval '1 millisecond'"  \
  "     + " LOGBOOK_RUN_LEASE("p") ","                                                   \
  "   last_reason = CASE WHEN p.lease_until IS NOT NULL"                                 \
  "     THEN 'not acked within ack_timeout' ELSE p.last_reason END"                      \
  "   WHERE p.group_name = $1 AND p.global_position = ANY (ARRAY(SELECT global_position" \
  "     FROM chosen WHERE attempts < $7))"                                              \
  "   RETURNING p.global_position, p.attempts, p.through_version),"                      \
  " counted AS (INSERT INTO logbook.consumer_group_counters (group_name, consumer,"      \
  "   delivered) SELECT $1, $2, count(*) FROM claimed HAVING count(*) > 0"               \
  "   ON CONFLICT (group_name, consumer) DO UPDATE"                                      \
  "   SET delivered = consumer_group_counters.delivered + excluded.delivered)"           \
  " SELECT " LOGBOOK_EVENT_COLUMNS                                                       \
  ", c.attempts, c.through_version FROM claimed c"                                       \
  " JOIN logbook.event_log e USING (global_position) ORDER BY global_position"
// ROUND_ROBIN: the lowest free positions. ($4, the members, unused.)
constexpr char kClaimAny[] = "group_claim_any";
constexpr char kClaimAnySql[] =
    "WITH " LOGBOOK_CLAIM_ROOM ","
    " chosen AS (SELECT p.global_position, p.attempts FROM logbook.consumer_group_pending p"
    " WHERE p.group_name = $1 AND" LOGBOOK_CLAIMABLE " AND cardinality($4::text[]) >= 0"
    " ORDER BY p.global_position LIMIT (SELECT n FROM room) FOR UPDATE OF p SKIP LOCKED),"
    LOGBOOK_CLAIM_TAKE;
// PER_STREAM: which of the live members `members` (a text[]) a stream
// goes to: rendezvous hashing, so that a member joining or leaving moves
// only its share of the streams.
#define LOGBOOK_STREAM_OWNER(stream, members)                                               \
  "(SELECT m FROM unnest(" members "::text[]) m"                                            \
  "  ORDER BY hashtext(" stream " || '/' || m) DESC, m LIMIT 1)"
// The distinct streams of a group's pending events, skipping from stream
// to stream along the stream index (a row comparison alone, so that each
// step starts right there; past the group's last stream it ends).
#define LOGBOOK_PENDING_STREAMS                                                              \
  "heads AS ("                                                                               \
  " (SELECT stream_id, global_position FROM logbook.consumer_group_pending"                  \
  "   WHERE group_name = $1 ORDER BY group_name, stream_id, global_position LIMIT 1)"        \
  " UNION ALL"                                                                               \
  " SELECT n.stream_id, n.global_position FROM heads h CROSS JOIN LATERAL"                   \
  " (SELECT group_name, stream_id, global_position FROM logbook.consumer_group_pending"      \
  "   WHERE (group_name, stream_id) > ($1, h.stream_id)"                                     \
  "   ORDER BY group_name, stream_id, global_position LIMIT 1) n"                            \
  " WHERE n.group_name = $1)"
// PER_STREAM: each stream's lowest pending event (found by skipping from
// stream to stream along the stream index), when it is free, nothing else
// of its stream is in flight (a replayed event sorts below one that is),
// and hashing the stream over the live members $4 names this consumer.
// Another instance claiming at once finds the same lowest events and skips
// the ones locked here: a stream never has two in flight.
constexpr char kClaimPerStream[] = "group_claim_per_stream";
constexpr char kClaimPerStreamSql[] =
    "WITH RECURSIVE " LOGBOOK_PENDING_STREAMS ","
    // Streams with an event in flight (by the partial index on sessions).
    " busy AS (SELECT DISTINCT stream_id FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND session IS NOT NULL AND lease_until > now()),"
    " " LOGBOOK_CLAIM_ROOM ","
    " chosen AS (SELECT p.global_position, p.attempts FROM logbook.consumer_group_pending p"
    " WHERE p.group_name = $1"
    " AND p.global_position = ANY (ARRAY(SELECT global_position FROM heads)) AND"
    LOGBOOK_CLAIMABLE
    " AND p.stream_id NOT IN (SELECT stream_id FROM busy)"
    " AND " LOGBOOK_STREAM_OWNER("p.stream_id", "$4") " = $2"
    " ORDER BY p.global_position LIMIT (SELECT n FROM room) FOR UPDATE OF p SKIP LOCKED),"
    LOGBOOK_CLAIM_TAKE;

// $2 consumer, $3 live members, $4 most stream ids: how many streams are
// the consumer's, and the first $4 of them. A stream in flight is its
// holder's; any other goes by hashing.
constexpr char kAssignment[] = "group_assignment";
constexpr char kAssignmentSql[] =
    "WITH RECURSIVE " LOGBOOK_PENDING_STREAMS ","
    " busy AS (SELECT DISTINCT ON (stream_id) stream_id, consumer"
    "   FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND session IS NOT NULL AND lease_until > now()),"
    " owned AS (SELECT h.stream_id FROM heads h LEFT JOIN busy b USING (stream_id)"
    "   WHERE coalesce(b.consumer, " LOGBOOK_STREAM_OWNER("h.stream_id", "$3") ") = $2)"
    " SELECT (SELECT count(*) FROM owned),"
    " ARRAY(SELECT stream_id FROM owned ORDER BY stream_id LIMIT $4)";

// Ack, one statement: $2 consumer, $3 session, $4 ids. Deletes them only
// when the session holds every one; returns how many.
constexpr char kAck[] = "group_ack";
constexpr char kAckSql[] =
    "WITH held AS (SELECT global_position FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND consumer = $2 AND session = $3"
    "   AND global_position = ANY ($4::bigint[]) FOR UPDATE),"
    " done AS (DELETE FROM logbook.consumer_group_pending p USING held h"
    "   WHERE p.group_name = $1 AND p.global_position = h.global_position"
    "   AND (SELECT count(*) FROM held) = cardinality($4::bigint[]) RETURNING 1),"
    " counted AS (INSERT INTO logbook.consumer_group_counters (group_name, consumer, acked)"
    "   SELECT $1, $2, count(*) FROM done HAVING count(*) > 0"
    "   ON CONFLICT (group_name, consumer) DO UPDATE"
    "   SET acked = consumer_group_counters.acked + excluded.acked)"
    " SELECT count(*) FROM done";

// PER_STREAM ack, then at once the next event of each stream acked for
// the same consumer, in one statement, so that a stream's events follow
// each other without waiting for the dispatcher's round (whose skip scan
// over every stream costs far more): $2 consumer, $3 session, $4 ids, $5
// how long a member stays live without a heartbeat. Acks as kAck (nothing
// when the session does not hold every id). A stream's next event is its
// lowest pending one besides the acked (a statement sees none of its own
// deletions), taken on the terms of kClaimPerStream: free and due, nothing
// else of its stream in flight, hashed to this consumer over the live
// members, locked or skipped; one delivered max_deliveries times already
// is left for a claim to park. Counts both the acks and the deliveries
// (one row of the counters, written once). Nothing follows in a
// ROUND_ROBIN group. Returns the events claimed, with their attempts, in
// position order; the acked count is in every row's last column, and a
// row of NULL events when nothing was claimed.
constexpr char kAckContinue[] = "group_ack_continue";
constexpr char kAckContinueSql[] =
    "WITH held AS (SELECT global_position, stream_id FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND consumer = $2 AND session = $3"
    "   AND global_position = ANY ($4::bigint[]) FOR UPDATE),"
    " done AS (DELETE FROM logbook.consumer_group_pending p USING held h"
    "   WHERE p.group_name = $1 AND p.global_position = h.global_position"
    "   AND (SELECT count(*) FROM held) = cardinality($4::bigint[])"
    "   RETURNING p.stream_id, p.through_version),"
    " g AS (SELECT ack_timeout_ms, max_deliveries FROM logbook.consumer_groups"
    "   WHERE group_name = $1 AND strategy = 'per_stream'),"
    " live AS (SELECT array_agg(consumer) AS members FROM logbook.consumer_group_members"
    "   WHERE group_name = $1 AND seen_at > now() - $5::interval),"
    " heads AS (SELECT n.global_position FROM (SELECT DISTINCT stream_id FROM done) d"
    "   CROSS JOIN LATERAL (SELECT global_position FROM logbook.consumer_group_pending p"
    "     WHERE p.group_name = $1 AND p.stream_id = d.stream_id"
    "     AND p.global_position <> ALL ($4::bigint[])"
    "     ORDER BY p.group_name, p.stream_id, p.global_position LIMIT 1) n"
    "   WHERE EXISTS (SELECT FROM g)),"
    // Streams with another event in flight (by the partial index on sessions).
    " busy AS (SELECT stream_id FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND session IS NOT NULL AND lease_until > now()"
    "   AND global_position <> ALL ($4::bigint[])),"
    " chosen AS (SELECT p.global_position FROM logbook.consumer_group_pending p, g, live"
    "   WHERE p.group_name = $1 AND p.global_position = ANY (ARRAY(SELECT global_position"
    "     FROM heads)) AND" LOGBOOK_CLAIMABLE " AND p.attempts < g.max_deliveries"
    "   AND p.stream_id NOT IN (SELECT stream_id FROM busy)"
    "   AND " LOGBOOK_STREAM_OWNER("p.stream_id", "live.members") " = $2"
    "   FOR UPDATE OF p SKIP LOCKED),"
    " claimed AS (UPDATE logbook.consumer_group_pending p SET attempts = p.attempts + 1,"
    "   consumer = $2, session = $3,"
    "   lease_until = now() + (SELECT ack_timeout_ms FROM g) * interval '1 millisecond'"
    "     + " LOGBOOK_RUN_LEASE("p") ","
    "   last_reason = CASE WHEN p.lease_until IS NOT NULL"
    "     THEN 'not acked within ack_timeout' ELSE p.last_reason END"
    "   WHERE p.group_name = $1 AND p.global_position IN (SELECT global_position FROM chosen)"
    "   RETURNING p.global_position, p.attempts, p.through_version),"
    // A run's acks were counted as they came (RunBook).
    " counted AS (INSERT INTO logbook.consumer_group_counters (group_name, consumer, acked,"
    "   delivered) SELECT $1, $2, (SELECT count(*) FROM done WHERE through_version IS NULL),"
    "   (SELECT count(*) FROM claimed)"
    "   WHERE EXISTS (SELECT FROM done)"
    "   ON CONFLICT (group_name, consumer) DO UPDATE"
    "   SET acked = consumer_group_counters.acked + excluded.acked,"
    "   delivered = consumer_group_counters.delivered + excluded.delivered)"
    " SELECT " LOGBOOK_EVENT_COLUMNS ", c.attempts, c.through_version, (SELECT count(*) FROM done),"
    " (SELECT ack_timeout_ms FROM g)"
    " FROM (SELECT 1) one LEFT JOIN (claimed c JOIN logbook.event_log e USING (global_position))"
    " ON true ORDER BY e.global_position";

// Ack and nack: $2 consumer, $3 session, $4 ids. The ids the consumer
// holds, locked, with their attempts.
constexpr char kHeld[] = "group_held";
constexpr char kHeldSql[] =
    "SELECT global_position, attempts FROM logbook.consumer_group_pending"
    " WHERE group_name = $1 AND consumer = $2 AND session = $3"
    " AND global_position = ANY ($4::bigint[]) FOR UPDATE";
constexpr char kDone[] = "group_done";
constexpr char kDoneSql[] =
    "DELETE FROM logbook.consumer_group_pending"
    " WHERE group_name = $1 AND global_position = ANY ($2::bigint[])";
// $2 ids, $3 delays in ms, $4 reason.
constexpr char kRetry[] = "group_retry";
constexpr char kRetrySql[] =
    "UPDATE logbook.consumer_group_pending p SET consumer = NULL, session = NULL,"
    " lease_until = NULL, not_before = now() + r.delay * interval '1 millisecond',"
    " last_reason = $4"
    " FROM unnest($2::bigint[], $3::bigint[]) AS r(id, delay)"
    " WHERE p.group_name = $1 AND p.global_position = r.id";
// $2 ids, $3 reason.
constexpr char kPark[] = "group_park";
constexpr char kParkSql[] =
    "WITH parked AS (DELETE FROM logbook.consumer_group_pending"
    " WHERE group_name = $1 AND global_position = ANY ($2::bigint[])"
    " RETURNING group_name, global_position, attempts)"
    " INSERT INTO logbook.consumer_group_parked (group_name, global_position, attempts, reason)"
    " SELECT group_name, global_position, attempts, $3 FROM parked";
// $2 how long after its deadline another instance takes a lease back.
constexpr char kNextDue[] = "group_next_due";
constexpr char kNextDueSql[] =
    "SELECT (extract(epoch FROM least((SELECT min(CASE WHEN lease_until > now()"
    "   THEN lease_until ELSE not_before END) FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND (lease_until > now() OR not_before > now())),"
    " (SELECT min(lease_until) + $2::interval FROM logbook.consumer_group_leases"
    "   WHERE group_name = $1),"
    " (SELECT min(lease_until) + $2::interval FROM logbook.consumer_group_pending"
    "   WHERE group_name = $1 AND through_version IS NOT NULL AND lease_until <= now())))"
    " * 1000000)::bigint";

// Parked: $2 after, $3 limit.
constexpr char kListParked[] = "group_list_parked";
constexpr char kListParkedSql[] =
    "SELECT k.global_position, e.stream_id, e.stream_version, e.event_type, k.attempts,"
    " k.reason, (extract(epoch FROM k.parked_at) * 1000000)::bigint"
    " FROM logbook.consumer_group_parked k JOIN logbook.event_log e USING (global_position)"
    " WHERE k.group_name = $1 AND k.global_position > $2 ORDER BY k.global_position LIMIT $3";
// $2 ids (NULL: any), $3 limit. The first of the ids that is not parked.
constexpr char kNotParked[] = "group_not_parked";
constexpr char kNotParkedSql[] =
    "SELECT id FROM unnest($2::bigint[]) WITH ORDINALITY AS i(id, n)"
    " WHERE NOT EXISTS (SELECT FROM logbook.consumer_group_parked k"
    "   WHERE k.group_name = $1 AND k.global_position = i.id) ORDER BY n LIMIT 1";
constexpr char kReplay[] = "group_replay";
constexpr char kReplaySql[] =
    "WITH taken AS (DELETE FROM logbook.consumer_group_parked k WHERE k.group_name = $1"
    " AND k.global_position IN (SELECT global_position FROM logbook.consumer_group_parked"
    "   WHERE group_name = $1 AND ($2::bigint[] IS NULL OR global_position = ANY ($2::bigint[]))"
    "   ORDER BY global_position LIMIT $3)"
    " RETURNING k.global_position)"
    " INSERT INTO logbook.consumer_group_pending (group_name, global_position, stream_id)"
    " SELECT $1, t.global_position, e.stream_id FROM taken t"
    " JOIN logbook.event_log e USING (global_position) ON CONFLICT DO NOTHING";
constexpr char kDrop[] = "group_drop";
constexpr char kDropSql[] =
    "DELETE FROM logbook.consumer_group_parked k WHERE k.group_name = $1"
    " AND k.global_position IN (SELECT global_position FROM logbook.consumer_group_parked"
    "   WHERE group_name = $1 AND ($2::bigint[] IS NULL OR global_position = ANY ($2::bigint[]))"
    "   ORDER BY global_position LIMIT $3)";

// --- ROUND_ROBIN leases (migrations/0018): fresh events handed out a run
// at a time, one row per run; the LeaseBook of the call that holds a lease
// knows which of its events are settled.

// What a claim needs to know, unlocked: $2 session. The definition, the
// frontier, the log's head, the pending events the session holds, and
// whether any pending event is free to claim.
constexpr char kClaimContext[] = "group_claim_context";
constexpr char kClaimContextSql[] =
    "SELECT " LOGBOOK_GROUP_COLUMNS ", g.scanned_to, h.last_position,"
    " (SELECT count(*) FROM logbook.consumer_group_pending p"
    "   WHERE p.group_name = $1 AND p.session = $2 AND p.session IS NOT NULL"
    "   AND p.lease_until > now()),"
    " EXISTS (SELECT FROM logbook.consumer_group_pending p WHERE p.group_name = $1 AND"
    LOGBOOK_CLAIMABLE ")"
    " FROM logbook.consumer_groups g, logbook.log_head h WHERE g.group_name = $1";
// The frontier, locked: leases are cut one after the other. A lease's
// transactions commit asynchronously (synchronous_commit off for them
// alone): if PostgreSQL crashes before their commit reaches the disk, the
// lease was never there, or is still there, and its events are delivered
// again, which at-least-once allows; nothing is skipped.
#define LOGBOOK_ASYNC_COMMIT "set_config('synchronous_commit', 'off', true)"
constexpr char kLeaseFrontier[] = "group_lease_frontier";
constexpr char kLeaseFrontierSql[] =
    "SELECT g.scanned_to, h.last_position, " LOGBOOK_ASYNC_COMMIT
    " FROM logbook.consumer_groups g, logbook.log_head h WHERE g.group_name = $1 FOR UPDATE OF g";
// Under that lock: $2 consumer, $3 session, $4 frontier, $5 how far to
// look, $6 most events, $7 ack timeout ms. The target's next $6 events in
// ($4, $5] become a lease (none if there are none) and the frontier moves
// past them (to $5 when fewer were there). Returns the lease's id, its
// end and how many events. Positions only: the events are read after the
// commit. (The bounds are parameters, not the locked row's value: a
// generic plan then reads a range of the primary key, where with the
// frontier read in the statement it once read the whole log.)
constexpr char kLeaseTake[] = "group_lease_take";
constexpr char kLeaseTakeSql[] =
    "WITH picked AS (SELECT e.global_position FROM logbook.event_log e,"
    "   logbook.consumer_groups g WHERE g.group_name = $1"
    "   AND e.global_position > $4 AND e.global_position <= $5 AND" LOGBOOK_GROUP_TARGET
    "   ORDER BY e.global_position LIMIT $6),"
    " span AS (SELECT count(*) AS n, CASE WHEN count(*) = $6 THEN max(global_position)"
    "   ELSE $5 END AS upto FROM picked),"
    " moved AS (UPDATE logbook.consumer_groups g SET scanned_to = s.upto,"
    // Nothing found: no lease to close later, so the checkpoint follows now
    // (the lock keeps other leases from being cut meanwhile).
    "   checkpoint = CASE WHEN s.n > 0 THEN g.checkpoint ELSE greatest(g.checkpoint,"
    "     least((SELECT min(global_position) - 1 FROM logbook.consumer_group_pending"
    "       WHERE group_name = $1), (SELECT min(after_position)"
    "       FROM logbook.consumer_group_leases WHERE group_name = $1), s.upto)) END"
    "   FROM span s WHERE g.group_name = $1),"
    " leased AS (INSERT INTO logbook.consumer_group_leases (group_name, consumer, session,"
    "   after_position, through_position, events, lease_until)"
    "   SELECT $1, $2, $3, $4::bigint, upto, n, now() + $7 * interval '1 millisecond' FROM span"
    "   WHERE n > 0 RETURNING lease_id),"
    " counted AS (INSERT INTO logbook.consumer_group_counters (group_name, consumer, delivered)"
    "   SELECT $1, $2, n FROM span WHERE n > 0 ON CONFLICT (group_name, consumer) DO UPDATE"
    "   SET delivered = consumer_group_counters.delivered + excluded.delivered)"
    " SELECT (SELECT lease_id FROM leased), s.upto, s.n FROM span s";
// The checkpoint, moved up to what is done, all of it read from the
// statement's snapshot; the row is written only when it moves.
#define LOGBOOK_MOVE_CHECKPOINT(OTHER_LEASES)                                                 \
  "UPDATE logbook.consumer_groups g SET checkpoint = t.cp FROM"                              \
  "   (SELECT least((SELECT min(global_position) - 1 FROM logbook.consumer_group_pending"     \
  "       WHERE group_name = $1),"                                                            \
  "     (SELECT min(after_position) FROM logbook.consumer_group_leases"                       \
  "       WHERE group_name = $1 AND " OTHER_LEASES "),"                                       \
  "     (SELECT scanned_to FROM logbook.consumer_groups WHERE group_name = $1)) AS cp) t"     \
  "   WHERE g.group_name = $1 AND t.cp > g.checkpoint"
constexpr char kMoveCheckpoint[] = "group_move_checkpoint";
constexpr char kMoveCheckpointSql[] = LOGBOOK_MOVE_CHECKPOINT("true");
// The events of a lease: $2 after, $3 through, $4 how many.
constexpr char kLeaseEvents[] = "group_lease_events";
constexpr char kLeaseEventsSql[] =
    "SELECT " LOGBOOK_EVENT_COLUMNS
    " FROM logbook.event_log e,"
    // The target alone: the group's tenant column would make the event's ambiguous.
    " (SELECT target_stream_id, target_category, filter_stream_prefix, filter_event_types"
    "  FROM logbook.consumer_groups WHERE group_name = $1) g"
    " WHERE e.global_position > $2 AND e.global_position <= $3 AND" LOGBOOK_GROUP_TARGET
    " ORDER BY e.global_position LIMIT $4";
// $2 consumer, $3 session, $4 lease, $5 acked, $6 its open events, $7 why
// they go back. Closes the lease if the session still holds it; its open
// events wait for delivery again (each counted as one delivery); the
// checkpoint follows. Every bound of the checkpoint is read from the
// statement's snapshot, so a lease cut meanwhile is never skipped. Returns
// whether it held the lease.
constexpr char kLeaseClose[] = "group_lease_close";
constexpr char kLeaseCloseSql[] =
    "WITH closed AS (DELETE FROM logbook.consumer_group_leases"
    "   WHERE lease_id = $4 AND group_name = $1 AND session = $3 RETURNING lease_id),"
    " back AS (INSERT INTO logbook.consumer_group_pending (group_name, global_position,"
    "   stream_id, attempts, last_reason) SELECT $1, e.global_position, e.stream_id, 1, $7::text"
    "   FROM logbook.event_log e WHERE EXISTS (SELECT FROM closed)"
    "   AND e.global_position = ANY ($6::bigint[]) ON CONFLICT DO NOTHING),"
    " counted AS (INSERT INTO logbook.consumer_group_counters (group_name, consumer, acked)"
    "   SELECT $1, $2, $5::bigint WHERE $5::bigint > 0 AND EXISTS (SELECT FROM closed)"
    "   ON CONFLICT (group_name, consumer) DO UPDATE"
    "   SET acked = consumer_group_counters.acked + excluded.acked),"
    " moved AS (UPDATE logbook.consumer_groups g SET checkpoint = greatest(g.checkpoint,"
    "   (SELECT least((SELECT min(global_position) - 1 FROM logbook.consumer_group_pending"
    "       WHERE group_name = $1),"
    "     (SELECT min(after_position) FROM logbook.consumer_group_leases"
    "       WHERE group_name = $1 AND lease_id <> $4),"
    "     (SELECT min(x) - 1 FROM unnest($6::bigint[]) x),"
    "     (SELECT scanned_to FROM logbook.consumer_groups WHERE group_name = $1))))"
    "   WHERE g.group_name = $1 AND EXISTS (SELECT FROM closed))"
    " SELECT count(*) FROM closed";
// Leases whose every event was settled, closed in one statement: $2 their
// ids, $3 their sessions, $4 their consumers, $5 the acks of each. Those
// the sessions still hold go; the acks are counted; the checkpoint follows
// (as kLeaseClose's; the group's row, which every lease locks, is written
// only when it moves). Returns how many went.
constexpr char kLeaseCloseDone[] = "group_lease_close_done";
constexpr char kLeaseCloseDoneSql[] =
    "WITH closed AS (DELETE FROM logbook.consumer_group_leases l"
    "   USING unnest($2::bigint[], $3::text[]) AS u(id, s)"
    "   WHERE l.group_name = $1 AND l.lease_id = u.id AND l.session = u.s RETURNING l.lease_id),"
    " counted AS (INSERT INTO logbook.consumer_group_counters (group_name, consumer, acked)"
    "   SELECT $1, u.c, sum(u.a) FROM unnest($2::bigint[], $4::text[], $5::bigint[]) AS u(id, c, a)"
    "   WHERE u.a > 0 AND u.id IN (SELECT lease_id FROM closed) GROUP BY u.c"
    "   ON CONFLICT (group_name, consumer) DO UPDATE"
    "   SET acked = consumer_group_counters.acked + excluded.acked),"
    " moved AS (" LOGBOOK_MOVE_CHECKPOINT("lease_id NOT IN (SELECT lease_id FROM closed)") ")"
    " SELECT (SELECT count(*) FROM closed), " LOGBOOK_ASYNC_COMMIT;
// $2 consumer, $3 session, $4 lease, $5 events of it. Makes them pending
// events held by the session until the lease's deadline, delivered once,
// so that a nack settles them as any other.
constexpr char kLeaseHold[] = "group_lease_hold";
constexpr char kLeaseHoldSql[] =
    "INSERT INTO logbook.consumer_group_pending (group_name, global_position, stream_id,"
    " attempts, consumer, session, lease_until)"
    " SELECT $1, e.global_position, e.stream_id, 1, $2, $3, l.lease_until"
    " FROM logbook.consumer_group_leases l, logbook.event_log e"
    " WHERE l.lease_id = $4 AND l.group_name = $1 AND l.session = $3"
    " AND e.global_position = ANY ($5::bigint[]) ON CONFLICT DO NOTHING";
// $2 grace, $3 consumer (NULL: none), $4 its new session. Takes back the
// leases past their deadline by more than $2 (their instance is gone), and
// those consumer $3 held in another session: every event of them that is
// not parked waits for delivery again, counted as delivered once.
constexpr char kLeaseRecover[] = "group_lease_recover";
constexpr char kLeaseRecoverSql[] =
    "WITH gone AS (DELETE FROM logbook.consumer_group_leases l WHERE l.group_name = $1"
    "   AND (l.lease_until < now() - $2::interval OR (l.consumer = $3 AND l.session <> $4))"
    "   RETURNING after_position, through_position, l.consumer = $3 AS reconnected)"
    " INSERT INTO logbook.consumer_group_pending (group_name, global_position, stream_id,"
    "   attempts, last_reason)"
    " SELECT $1, e.global_position, e.stream_id, 1, CASE WHEN r.reconnected"
    "   THEN 'its consumer reconnected' ELSE 'not acked within ack_timeout' END"
    " FROM gone r JOIN logbook.event_log e ON e.global_position > r.after_position"
    "   AND e.global_position <= r.through_position, logbook.consumer_groups g"
    " WHERE g.group_name = $1 AND" LOGBOOK_GROUP_TARGET
    " AND NOT EXISTS (SELECT FROM logbook.consumer_group_parked k"
    "   WHERE k.group_name = $1 AND k.global_position = e.global_position)"
    " ON CONFLICT DO NOTHING";

// --- PER_STREAM runs (migrations/0023): the RunBook of the call that holds
// a run knows which of its events is out.

// The events of runs after their first: $2 streams, $3 the first's
// versions, $4 the runs' last versions. In position order.
constexpr char kRunEvents[] = "group_run_events";
constexpr char kRunEventsSql[] =
    "SELECT " LOGBOOK_EVENT_COLUMNS
    " FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS r(run_stream, after_version,"
    "   through_version)"
    // A range of the stream's index each (a join here was planned as a
    // scan of the whole log).
    " CROSS JOIN LATERAL (SELECT * FROM logbook.event_log x WHERE x.stream_id = r.run_stream"
    "   AND x.stream_version > r.after_version AND x.stream_version <= r.through_version"
    "   ORDER BY x.stream_version LIMIT r.through_version - r.after_version) e,"
    " (SELECT target_stream_id, target_category, filter_stream_prefix, filter_event_types"
    "  FROM logbook.consumer_groups WHERE group_name = $1) g"
    " WHERE" LOGBOOK_GROUP_TARGET " ORDER BY e.global_position";
// Runs split at their event out (RunBook::Split), if session $3 still holds
// them: $4 rows, $5 the events out, $6 their attempts, $7 their deadlines
// (Unix µs), $8 where the rest starts (0: none), $9 how many events the
// rest has. The event out becomes a row of its own held by consumer $2 in
// session $3 until its deadline; the rest a free run.
constexpr char kRunSplit[] = "group_run_split";
constexpr char kRunSplitSql[] =
    "WITH u AS (SELECT * FROM unnest($4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],"
    "   $8::bigint[], $9::bigint[]) AS u(k, p, a, d, r, n)),"
    " old AS (DELETE FROM logbook.consumer_group_pending x USING u WHERE x.group_name = $1"
    "   AND x.global_position = u.k AND x.session = $3"
    "   RETURNING x.global_position AS k, x.stream_id AS s, x.through_version AS t),"
    " single AS (INSERT INTO logbook.consumer_group_pending (group_name, global_position,"
    "   stream_id, attempts, consumer, session, lease_until)"
    "   SELECT $1, u.p, old.s, u.a, $2, $3, to_timestamp(u.d / 1000000.0) FROM old JOIN u USING "
    "(k))"
    " INSERT INTO logbook.consumer_group_pending (group_name, global_position, stream_id,"
    "   through_version, events) SELECT $1, u.r, old.s, old.t, u.n FROM old JOIN u USING (k)"
    " WHERE u.r > 0";
// Runs that ended (RunBook::Ended), if their sessions still hold them: $2
// rows, $3 sessions, $4 where the rest starts (0: the run is done and
// goes), $5 how many events the rest has (then a free run).
constexpr char kRunEnd[] = "group_run_end";
constexpr char kRunEndSql[] =
    "WITH u AS (SELECT * FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bigint[])"
    "   AS u(k, s, r, n)),"
    " done AS (DELETE FROM logbook.consumer_group_pending x USING u WHERE x.group_name = $1"
    "   AND x.global_position = u.k AND x.session = u.s AND u.r = 0)"
    " UPDATE logbook.consumer_group_pending x SET global_position = u.r, events = u.n,"
    " attempts = 0, consumer = NULL, session = NULL, lease_until = NULL, not_before = now(),"
    " last_reason = NULL FROM u"
    " WHERE x.group_name = $1 AND x.global_position = u.k AND x.session = u.s AND u.r > 0";
// $2 session, $3 rows, $4 ack timeout ms: the session's runs, held longer.
// Returns the rows it still held.
constexpr char kRunRenew[] = "group_run_renew";
constexpr char kRunRenewSql[] =
    "UPDATE logbook.consumer_group_pending p SET lease_until = now()"
    " + $4 * interval '1 millisecond' + " LOGBOOK_RUN_LEASE("p")
    " WHERE p.group_name = $1 AND p.session = $2 AND p.global_position = ANY ($3::bigint[])"
    " RETURNING p.global_position";
// $2 grace, $3 consumer (NULL: none), $4 its new session. Takes back the
// runs still held $2 after their lease (their instance is gone), and those
// consumer $3 held in another session: each event of them waits for
// delivery again as a row of its own, counted as delivered once (the
// first as often as the run's row says, at least once).
constexpr char kRunTakeBack[] = "group_run_take_back";
constexpr char kRunTakeBackSql[] =
    "WITH gone AS (DELETE FROM logbook.consumer_group_pending x WHERE x.group_name = $1"
    "   AND x.through_version IS NOT NULL AND x.lease_until IS NOT NULL"
    "   AND (x.lease_until < now() - $2::interval OR (x.consumer = $3 AND x.session <> $4))"
    "   RETURNING x.global_position AS k, x.stream_id AS s, x.through_version AS t,"
    "   x.attempts AS a, x.consumer = $3 AS reconnected)"
    " INSERT INTO logbook.consumer_group_pending (group_name, global_position, stream_id,"
    "   attempts, last_reason)"
    " SELECT $1, e.global_position, e.stream_id,"
    "   CASE WHEN e.global_position = r.k THEN greatest(r.a, 1) ELSE 1 END,"
    "   CASE WHEN r.reconnected IS TRUE THEN 'its consumer reconnected'"
    "   ELSE 'not acked within ack_timeout' END"
    " FROM gone r JOIN logbook.event_log f ON f.global_position = r.k"
    " JOIN logbook.event_log e ON e.stream_id = r.s AND e.stream_version >= f.stream_version"
    "   AND e.stream_version <= r.t,"
    " (SELECT target_stream_id, target_category, filter_stream_prefix, filter_event_types"
    "  FROM logbook.consumer_groups WHERE group_name = $1) g"
    " WHERE" LOGBOOK_GROUP_TARGET " ON CONFLICT DO NOTHING";
// What the RunBooks acked and sent, counted: $2 consumers, $3 acks, $4
// deliveries.
constexpr char kRunCount[] = "group_run_count";
constexpr char kRunCountSql[] =
    "INSERT INTO logbook.consumer_group_counters (group_name, consumer, acked, delivered)"
    " SELECT $1, c, a, d FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(c, a, d)"
    " WHERE EXISTS (SELECT FROM logbook.consumer_groups WHERE group_name = $1)"  // Not deleted.
    " ON CONFLICT (group_name, consumer) DO UPDATE"
    " SET acked = consumer_group_counters.acked + excluded.acked,"
    " delivered = consumer_group_counters.delivered + excluded.delivered";

// Each new connection of the groups. JIT is off: the group-state query's
// cost estimates on the event log, not the work it does, made it compile
// for 1.8 s on every call.
void Prepare(pqxx::connection& conn) {
  pqxx::nontransaction(conn).exec0("SET jit = off");
  for (const auto& [name, sql] : std::initializer_list<std::pair<const char*, const char*>>{
           {kCreate, kCreateSql},
           {kDefinition, kDefinitionSql},
           {kDefinitionForUpdate, kDefinitionForUpdateSql},
           {kUpdate, kUpdateSql},
           {kDelete, kDeleteSql},
           {kNames, kNamesSql},
           {kTenants, kTenantsSql},
           {kAnalyze, kAnalyzeSql},
           {kState, kStateSql},
           {kMembers, kMembersSql},
           {kJoin, kJoinSql},
           {kHeartbeat, kHeartbeatSql},
           {kLiveMembers, kLiveMembersSql},
           {kAssignment, kAssignmentSql},
           {kRelease, kReleaseSql},
           {kLeave, kLeaveSql},
           {kFillStart, kFillStartSql},
           {kFillInsert, kFillInsertSql},
           {kFillEnd, kFillEndSql},
           {kClaimAny, kClaimAnySql},
           {kClaimPerStream, kClaimPerStreamSql},
           {kAck, kAckSql},
           {kHeld, kHeldSql},
           {kDone, kDoneSql},
           {kRetry, kRetrySql},
           {kPark, kParkSql},
           {kAckContinue, kAckContinueSql},
           {kNextDue, kNextDueSql},
           {kListParked, kListParkedSql},
           {kNotParked, kNotParkedSql},
           {kReplay, kReplaySql},
           {kDrop, kDropSql},
           {kClaimContext, kClaimContextSql},
           {kLeaseFrontier, kLeaseFrontierSql},
           {kMoveCheckpoint, kMoveCheckpointSql},
           {kLeaseTake, kLeaseTakeSql},
           {kLeaseEvents, kLeaseEventsSql},
           {kLeaseClose, kLeaseCloseSql},
           {kLeaseCloseDone, kLeaseCloseDoneSql},
           {kLeaseHold, kLeaseHoldSql},
           {kLeaseRecover, kLeaseRecoverSql},
           {kRunEvents, kRunEventsSql},
           {kRunSplit, kRunSplitSql},
           {kRunEnd, kRunEndSql},
           {kRunRenew, kRunRenewSql},
           {kRunTakeBack, kRunTakeBackSql},
           {kRunCount, kRunCountSql},
       }) {
    conn.prepare(name, sql);
  }
}

constexpr int kConnections = 8;
// Fill looks at most this many positions past where it got per call, so a
// sparse filter still moves the checkpoint in bounded steps.
constexpr int64_t kScanWindow = 100000;
// Fill asks for fresh statistics of the pending events from this many on
// (ShouldAnalyze).
constexpr int64_t kAnalyzeFrom = 1000;
// ReplayParked and DropParked move this many rows per transaction.
constexpr int64_t kParkedBatch = 1000;
// Events of one PER_STREAM run, at most: what a claimed run's RunBook keeps
// in memory (with 1,000 runs out to a consumer, a few MiB).
constexpr int64_t kRunLength = 32;
// How long after its claim (or renewal) a run's row stays held past the
// ack timeout (LOGBOOK_RUN_LEASE).
constexpr absl::Duration kRunLease = absl::Seconds(10);
// A lease still there this long after its deadline is taken back by any
// instance: its own instance, which closes it at the deadline, is gone.
constexpr absl::Duration kLeaseGrace = absl::Seconds(2);
// A ROUND_ROBIN group's upkeep in Fill (taking back the leases of instances
// gone, moving the checkpoint) runs at most this often, not on every move
// of the log's head, whose deliveries would wait for it: such a lease comes
// back kLeaseGrace after its deadline anyway, and closing leases moves the
// checkpoint too.
constexpr absl::Duration kRoundRobinUpkeep = absl::Seconds(1);

std::string Interval(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d), " milliseconds");
}

const char* StrategyName(GroupStrategy s) {
  return s == GroupStrategy::kPerStream ? "per_stream" : "round_robin";
}


absl::Status NoGroup(const std::string& name) {
  return absl::NotFoundError(
      absl::StrCat("consumer group '", NameOfGroup(name), "' does not exist"));
}

// "host:pid:x/" of session "host:pid:x/7".
std::string SessionPrefix(const std::string& session) {
  return session.substr(0, session.rfind('/') + 1);
}

std::vector<std::string> TextArrayField(const pqxx::field& f) {
  std::vector<std::string> out;
  auto parser = f.as_array();
  for (auto [juncture, value] = parser.get_next(); juncture != pqxx::array_parser::juncture::done;
       std::tie(juncture, value) = parser.get_next()) {
    if (juncture == pqxx::array_parser::juncture::string_value) out.push_back(value);
  }
  return out;
}

GroupDefinition DefinitionFromRow(const pqxx::row& r) {
  GroupDefinition d;
  d.name = NameOfGroup(r[0].as<std::string>());
  d.tenant = TenantOfGroup(r[0].as<std::string>());
  d.target.stream_id = r[1].as<std::string>();
  d.target.category = r[2].as<std::string>();
  d.target.stream_prefix = r[3].as<std::string>();
  d.target.event_types = TextArrayField(r[4]);
  d.settings.strategy =
      r[5].as<std::string>() == "per_stream" ? GroupStrategy::kPerStream : GroupStrategy::kRoundRobin;
  d.settings.ack_timeout = absl::Milliseconds(r[6].as<int64_t>());
  d.settings.max_deliveries = r[7].as<uint32_t>();
  d.settings.retry_backoff = absl::Milliseconds(r[8].as<int64_t>());
  d.settings.retry_backoff_max = absl::Milliseconds(r[9].as<int64_t>());
  d.settings.max_in_flight = r[10].as<uint32_t>();
  d.created_at = absl::FromUnixMicros(r[11].as<int64_t>());
  return d;
}

// The deliveries a claim returned (the event's columns, its attempts, the
// run's last version or NULL), appended to `out`, with each run's last
// version in `through` (-1: a single event).
void ReadClaimed(const pqxx::result& claimed, std::vector<GroupDelivery>& out,
                 std::vector<int64_t>& through) {
  std::vector<RecordedEvent> events = ToEvents(claimed);
  for (size_t i = 0; i < events.size(); ++i) {
    out.push_back({std::move(events[i]), claimed[i][kEventColumns].as<uint32_t>()});
    const pqxx::field t = claimed[i][kEventColumns + 1];
    through.push_back(t.is_null() ? -1 : t.as<int64_t>());
  }
}

std::vector<int64_t> ToSqlIds(const std::vector<uint64_t>& ids) {
  std::vector<int64_t> out;
  out.reserve(ids.size());
  for (uint64_t id : ids) {
    out.push_back(static_cast<int64_t>(std::min<uint64_t>(id, std::numeric_limits<int64_t>::max())));
  }
  return out;
}

class PgConsumerGroups final : public ConsumerGroups {
 public:
  PgConsumerGroups(const StoreOptions& options, LeaseEventsStore lease_events)
      : lease_events_(std::move(lease_events)),
        observer_(options.observer),
        pool_(options.dsn, kConnections, options.acquire_timeout, options.max_waiters, Prepare,
              "consumer_groups", observer_.get()),
        member_timeout_(Interval(options.member_timeout)) {}

  absl::Status Ping() {
    return Run("", "connect to the database",
               [](pqxx::connection&) -> absl::StatusOr<bool> { return true; })
        .status();
  }

  absl::StatusOr<GroupDefinition> Create(const std::string& name, const EventFilter& target,
                                         GroupStart start,
                                         const GroupSettingsPatch& patch) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("group", NameOfGroup(name)));
    LOGBOOK_ASSIGN_OR_RETURN(const GroupSettings s, ApplySettings(GroupSettings{}, patch));
    const int64_t after = start.kind == GroupStart::kNow ? -1
                          : start.kind == GroupStart::kAfterPosition
                              ? static_cast<int64_t>(std::min<uint64_t>(
                                    start.after_position, std::numeric_limits<int64_t>::max()))
                              : 0;
    return Run(TenantOfGroup(name), absl::StrCat("create consumer group '", NameOfGroup(name), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<GroupDefinition> {
                 pqxx::work tx(conn);
                 const pqxx::result r = tx.exec_prepared(
                     kCreate, name, target.stream_id, target.category, target.stream_prefix,
                     TextArray(target.event_types).Param(), StrategyName(s.strategy),
                     static_cast<int64_t>(Millis(s.ack_timeout)),
                     static_cast<int64_t>(s.max_deliveries),
                     static_cast<int64_t>(Millis(s.retry_backoff)),
                     static_cast<int64_t>(Millis(s.retry_backoff_max)),
                     static_cast<int64_t>(s.max_in_flight), after);
                 if (r.empty()) {
                   return absl::AlreadyExistsError(
                       absl::StrCat("consumer group '", NameOfGroup(name), "' already exists"));
                 }
                 tx.commit();
                 return DefinitionFromRow(r[0]);
               });
  }

  absl::StatusOr<GroupDefinition> Update(const std::string& name,
                                         const GroupSettingsPatch& patch) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("group", NameOfGroup(name)));
    ForgetUpkeep(name);
    return Run(TenantOfGroup(name), absl::StrCat("update consumer group '", NameOfGroup(name), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<GroupDefinition> {
                 pqxx::work tx(conn);
                 const pqxx::result r = tx.exec_prepared(kDefinitionForUpdate, name);
                 if (r.empty()) return NoGroup(NameOfGroup(name));
                 GroupDefinition d = DefinitionFromRow(r[0]);
                 LOGBOOK_ASSIGN_OR_RETURN(d.settings, ApplySettings(d.settings, patch));
                 const GroupSettings& s = d.settings;
                 tx.exec_prepared(kUpdate, name, StrategyName(s.strategy),
                                  static_cast<int64_t>(Millis(s.ack_timeout)),
                                  static_cast<int64_t>(s.max_deliveries),
                                  static_cast<int64_t>(Millis(s.retry_backoff)),
                                  static_cast<int64_t>(Millis(s.retry_backoff_max)),
                                  static_cast<int64_t>(s.max_in_flight));
                 tx.commit();
                 return d;
               });
  }

  absl::Status Delete(const std::string& name) override {
    ForgetUpkeep(name);
    ForgetRuns(name);
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("group", NameOfGroup(name)));
    return Run(TenantOfGroup(name), absl::StrCat("delete consumer group '", NameOfGroup(name), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
                 pqxx::work tx(conn);
                 if (tx.exec_prepared(kDelete, name).empty()) return NoGroup(NameOfGroup(name));
                 tx.commit();
                 return true;
               })
        .status();
  }

  absl::StatusOr<std::vector<GroupInfo>> List(absl::string_view tenant) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateTenant("tenant", tenant));
    LOGBOOK_ASSIGN_OR_RETURN(
        std::vector<std::string> names,
        Run(tenant, "list consumer groups",
            [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<std::string>> {
              pqxx::nontransaction tx(conn);
              std::vector<std::string> out;
              for (const auto& r : tx.exec_prepared(kNames)) out.push_back(r[0].as<std::string>());
              return out;
            }));
    std::vector<GroupInfo> groups;
    for (const std::string& key : names) {  // The tenant's only (row-level security).
      absl::StatusOr<GroupInfo> info = Get(key);
      if (absl::IsNotFound(info.status())) continue;  // Deleted meanwhile.
      LOGBOOK_RETURN_IF_ERROR(info.status());
      groups.push_back(*std::move(info));
    }
    return groups;
  }

  absl::StatusOr<std::vector<std::string>> Tenants() override {
    return Run(kDefaultTenant, "list tenants",
               [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<std::string>> {
                 pqxx::nontransaction tx(conn);
                 std::vector<std::string> out;
                 for (const auto& r : tx.exec_prepared(kTenants)) {
                   out.push_back(r[0].as<std::string>());
                 }
                 return out;
               });
  }

  absl::StatusOr<GroupInfo> Get(const std::string& name) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("group", NameOfGroup(name)));
    LOGBOOK_RETURN_IF_ERROR(CloseDone(name));
    return Run(TenantOfGroup(name),
               absl::StrCat("describe consumer group '", NameOfGroup(name), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<GroupInfo> {
                 pqxx::work tx(conn);  // One snapshot.
                 const pqxx::result d = tx.exec_prepared(kDefinition, name);
                 if (d.empty()) return NoGroup(NameOfGroup(name));
                 GroupInfo info;
                 info.definition = DefinitionFromRow(d[0]);
                 const pqxx::row s = tx.exec_prepared1(kState, name);
                 info.checkpoint = s[0].as<uint64_t>();
                 info.head_position = s[1].as<uint64_t>();
                 const uint64_t pending = s[2].as<uint64_t>();
                 info.in_flight = s[3].as<uint64_t>();
                 info.delivered = s[4].as<uint64_t>();
                 info.acked = s[5].as<uint64_t>();
                 info.parked = s[6].as<uint64_t>();
                 info.oldest_parked_age = absl::Seconds(s[7].as<double>());
                 info.lag = absl::Seconds(s[8].as<double>());
                 info.lag_events = pending + s[9].as<uint64_t>();
                 for (const auto& m : tx.exec_prepared(kMembers, name, member_timeout_)) {
                   info.members.push_back({m[0].as<std::string>(), m[1].as<std::string>(),
                                           m[3].as<uint64_t>(), m[4].as<uint64_t>(),
                                           absl::FromUnixMicros(m[2].as<int64_t>())});
                 }
                 return info;
               });
  }

  absl::StatusOr<GroupDefinition> Join(const std::string& group, const std::string& consumer,
                                       const std::string& session) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("join.group", NameOfGroup(group)));
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("join.consumer", consumer));
    return Run(TenantOfGroup(group), absl::StrCat("join consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<GroupDefinition> {
                 pqxx::work tx(conn);
                 const pqxx::result d = tx.exec_prepared(kDefinition, group);
                 if (d.empty()) return NoGroup(NameOfGroup(group));
                 if (tx.exec_prepared(kJoin, group, consumer, session, member_timeout_,
                                      SessionPrefix(session))
                         .empty()) {
                   return absl::AlreadyExistsError(absl::StrCat("consumer '", consumer,
                                                                "' is already connected to group '",
                                                                NameOfGroup(group), "'"));
                 }
                 // What an earlier call held in this consumer's name comes back now.
                 const std::vector<Held> earlier = TakeBooks(group, consumer, session);
                 for (const Held& h : earlier) {
                   WriteSplits(tx, group, consumer, h.session, h.runs);
                 }
                 tx.exec_prepared(kRelease, group, consumer, static_cast<const char*>(nullptr),
                                  session, "its consumer reconnected", SessionPrefix(session));
                 for (const Held& h : earlier) {
                   for (const LeaseBook::Closed& c : h.leases) {
                     // A call of this instance that ended (kRelease).
                     CloseLease(tx, group, consumer, h.session, c, "its consumer went away");
                   }
                 }
                 tx.exec_prepared(kLeaseRecover, group, Interval(kLeaseGrace), consumer, session);
                 tx.exec_prepared(kRunTakeBack, group, Interval(kLeaseGrace), consumer, session);
                 tx.commit();
                 return DefinitionFromRow(d[0]);
               });
  }

  absl::StatusOr<std::vector<std::string>> Heartbeat(
      const std::string& group, const std::string& instance,
      const std::vector<std::string>& consumers) override {
    return Run(TenantOfGroup(group),
               absl::StrCat("renew consumers of group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<std::string>> {
                 pqxx::work tx(conn);
                 if (tx.exec_prepared(kDefinition, group).empty())
                   return NoGroup(NameOfGroup(group));
                 tx.exec_prepared(kHeartbeat, group, instance + "/",
                                  TextArray(consumers).Param());
                 std::vector<std::string> live;
                 for (const auto& r : tx.exec_prepared(kLiveMembers, group, member_timeout_)) {
                   live.push_back(r[0].as<std::string>());
                 }
                 tx.commit();
                 return live;
               });
  }

  absl::Status Leave(const std::string& group, const std::string& consumer,
                     const std::string& session) override {
    LOGBOOK_RETURN_IF_ERROR(CloseDone(group));
    return Run(TenantOfGroup(group),
               absl::StrCat("leave consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
                 pqxx::work tx(conn);
                 tx.exec_prepared(kLeave, group, consumer, session);
                 const Held held = TakeBook(group, session);
                 WriteSplits(tx, group, consumer, session, held.runs);
                 tx.exec_prepared(kRelease, group, consumer, session, session,
                                  "its consumer went away", SessionPrefix(session));
                 for (const LeaseBook::Closed& c : held.leases) {
                   CloseLease(tx, group, consumer, session, c, "its consumer went away");
                 }
                 tx.commit();
                 return true;
               })
        .status();
  }

  absl::StatusOr<bool> Fill(const std::string& group, size_t max_events) override {
    LOGBOOK_RETURN_IF_ERROR(CloseDone(group));
    {
      absl::MutexLock lock(&books_mu_);
      auto it = round_robin_upkept_.find(group);
      if (it != round_robin_upkept_.end() && absl::Now() < it->second + kRoundRobinUpkeep) {
        return true;
      }
      round_robin_upkept_.erase(group);
    }
    return Run(TenantOfGroup(group), absl::StrCat("fill consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
                 pqxx::work tx(conn);
                 const pqxx::result d = tx.exec_prepared(kDefinition, group);
                 if (d.empty()) return NoGroup(NameOfGroup(group));
                 const bool round_robin =
                     DefinitionFromRow(d[0]).settings.strategy == GroupStrategy::kRoundRobin;
                 // What instances that are gone held, taken back at most once
                 // a second (a PER_STREAM group fills far more often).
                 if (round_robin || TakeBackDue(group)) {
                   tx.exec_prepared(kLeaseRecover, group, Interval(kLeaseGrace),
                                    static_cast<const char*>(nullptr), "");
                   tx.exec_prepared(kRunTakeBack, group, Interval(kLeaseGrace),
                                    static_cast<const char*>(nullptr), "");
                 }
                 // ROUND_ROBIN: nothing to bring in ahead (claims cut fresh
                 // events into leases and move the checkpoint).
                 if (round_robin) {
                   tx.exec_prepared(kMoveCheckpoint, group);
                   tx.commit();
                   absl::MutexLock lock(&books_mu_);
                   round_robin_upkept_[group] = absl::Now();
                   return true;
                 }
                 const pqxx::result start = tx.exec_prepared(kFillStart, group);
                 if (start.empty()) return NoGroup(NameOfGroup(group));
                 const int64_t scanned = start[0][0].as<int64_t>();
                 const int64_t head = start[0][1].as<int64_t>();
                 const int64_t room =
                     static_cast<int64_t>(max_events) - start[0][2].as<int64_t>();
                 int64_t reached = scanned, pending = start[0][2].as<int64_t>();
                 // Windows of the log from small to larger, up to kScanWindow
                 // positions in all: however the planner reads a window (it
                 // reads all of it and sorts), a small one costs little.
                 int64_t left = room, window = std::max<int64_t>(room * 2, 1000);
                 while (left > 0 && reached < head && reached - scanned < kScanWindow) {
                   const int64_t through =
                       std::min({head, reached + window, scanned + kScanWindow});
                   const pqxx::row added =
                       tx.exec_prepared1(kFillInsert, group, reached, through, left, kRunLength);
                   const int64_t n = added[0].as<int64_t>();
                   pending += n;
                   left -= n;
                   reached = left == 0 ? added[1].as<int64_t>() : through;
                   window *= 2;
                 }
                 tx.exec_prepared(kFillEnd, group, reached);
                 tx.commit();
                 if (ShouldAnalyze(pending)) {
                   pqxx::nontransaction analyze(conn);
                   analyze.exec_prepared(kAnalyze);
                 }
                 return reached >= head;
               });
  }

  absl::StatusOr<std::vector<GroupDelivery>> Claim(const std::string& group,
                                                   const std::string& consumer,
                                                   const std::string& session,
                                                   const std::vector<std::string>& members,
                                                   size_t max) override {
    NoteMembers(group, members);
    LOGBOOK_RETURN_IF_ERROR(CloseDone(group));
    return Run(TenantOfGroup(group),
               absl::StrCat("deliver from consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<GroupDelivery>> {
                 GroupDefinition d;
                 const GroupSettings& s = d.settings;
                 ClaimContext context;
                 size_t leased = 0;
                 std::vector<GroupDelivery> out, firsts;
                 std::vector<int64_t> through;  // Of each of firsts (ReadClaimed).
                 absl::Time claimed_at;
                 {
                   pqxx::nontransaction tx(conn);  // One statement each.
                   const pqxx::result c = tx.exec_prepared(kClaimContext, group, session);
                   if (c.empty()) return NoGroup(NameOfGroup(group));
                   d = DefinitionFromRow(c[0]);
                   context = {c[0][12].as<int64_t>(), c[0][13].as<int64_t>(),
                              c[0][14].as<int64_t>()};
                   // Leases past their deadline go back first.
                   std::vector<LeaseBook::Closed> expired;
                   {
                     absl::MutexLock lock(&books_mu_);
                     if (auto it = books_.find({group, session}); it != books_.end()) {
                       expired = it->second.book.Expire(absl::Now());
                       leased = it->second.book.in_flight();
                     }
                   }
                   for (const LeaseBook::Closed& e : expired) {
                     CloseLease(tx, group, consumer, session, e, "not acked within ack_timeout");
                   }
                   bool split = false;
                   RunUpkeep(tx, group, consumer, session, s.ack_timeout, out, split);
                   const size_t room = max > leased ? max - leased : 0;
                   if (room > 0 && (c[0][15].as<bool>() || !expired.empty() || split)) {
                     claimed_at = absl::Now();
                     const pqxx::result claimed = tx.exec_prepared(
                         s.strategy == GroupStrategy::kPerStream ? kClaimPerStream : kClaimAny,
                         group, consumer, session, TextArray(members).Param(),
                         static_cast<int64_t>(room), static_cast<int64_t>(Millis(s.ack_timeout)),
                         static_cast<int64_t>(s.max_deliveries));
                     ReadClaimed(claimed, firsts, through);
                   }
                 }
                 LOGBOOK_RETURN_IF_ERROR(AdoptRuns(conn, group, consumer, session, firsts, through,
                                                   s.ack_timeout, claimed_at));
                 for (GroupDelivery& f : firsts) out.push_back(std::move(f));
                 if (s.strategy == GroupStrategy::kRoundRobin) {
                   const int64_t held = context.held + static_cast<int64_t>(out.size()) +
                                        static_cast<int64_t>(leased);
                   if (context.scanned_to < context.head && held < static_cast<int64_t>(max)) {
                     LOGBOOK_RETURN_IF_ERROR(TakeLease(conn, group, consumer, session, d,
                                                       static_cast<int64_t>(max) - held, out));
                   }
                 }
                 return out;
               });
  }

  absl::Status Ack(const std::string& group, const std::string& consumer,
                   const std::string& session, const std::vector<uint64_t>& ids) override {
    // Events out in runs are settled in memory once the others are acked
    // (all or nothing); one that left its run meanwhile is acked as the
    // others. What follows them waits for the next claim.
    auto [in_runs, others] = SplitRuns(group, session, ids);
    if (!others.empty()) LOGBOOK_RETURN_IF_ERROR(AckOthers(group, consumer, session, others));
    if (in_runs.empty()) return absl::OkStatus();
    const std::vector<uint64_t> late = AckRuns(group, consumer, session, in_runs, nullptr);
    if (late.empty()) return absl::OkStatus();
    return AckOthers(group, consumer, session, late);
  }

  absl::StatusOr<std::vector<GroupDelivery>> AckAndContinue(
      const std::string& group, const std::string& consumer, const std::string& session,
      const std::vector<uint64_t>& ids) override {
    auto [in_runs, others] = SplitRuns(group, session, ids);
    std::vector<GroupDelivery> next;
    if (!others.empty()) {
      if (!SplitLeased(group, session, others).first.empty()) {
        LOGBOOK_RETURN_IF_ERROR(AckOthers(group, consumer, session, others));  // ROUND_ROBIN.
      } else {
        LOGBOOK_ASSIGN_OR_RETURN(next, Continue(group, consumer, session, ToSqlIds(others), true));
      }
    }
    if (in_runs.empty()) return next;
    // An ack of a run's event out: its next event follows from memory; a
    // run done goes, and its stream's next pending event is claimed at once.
    std::vector<int64_t> done;
    const std::vector<uint64_t> late = AckRuns(group, consumer, session, in_runs, &done);
    if (!late.empty()) LOGBOOK_RETURN_IF_ERROR(AckOthers(group, consumer, session, late));
    {
      absl::MutexLock lock(&books_mu_);
      if (auto it = books_.find({group, session}); it != books_.end()) {
        std::vector<GroupDelivery> ready =
            it->second.runs.TakeReady(absl::Now(), it->second.ack_timeout);
        run_counts_[group][consumer].delivered += static_cast<int64_t>(ready.size());
        for (GroupDelivery& d : ready) next.push_back(std::move(d));
      }
    }
    if (done.empty()) return next;
    LOGBOOK_ASSIGN_OR_RETURN(std::vector<GroupDelivery> more,
                             Continue(group, consumer, session, done, false));
    for (GroupDelivery& d : more) next.push_back(std::move(d));
    return next;
  }

  absl::Status Nack(const std::string& group, const std::string& consumer,
                    const std::string& session, const std::vector<uint64_t>& ids,
                    NackAction action, std::optional<absl::Duration> delay,
                    const std::string& reason) override {
    LOGBOOK_RETURN_IF_ERROR(SplitRunsAt(group, consumer, session, ids));
    LOGBOOK_RETURN_IF_ERROR(HoldLeased(group, consumer, session, ids));
    return Settle(
        group, consumer, session, ids, "nack",
        [&](pqxx::work& tx, const GroupSettings& s, const std::vector<int64_t>& held,
            const std::vector<uint32_t>& attempts) {
          const std::string why = reason.empty() ? "nacked" : absl::StrCat("nacked: ", reason);
          if (action == NackAction::kSkip) {
            tx.exec_prepared(kDone, group, Int8Array(held).Param());
            return;
          }
          std::vector<int64_t> park, retry, delays;
          for (size_t i = 0; i < held.size(); ++i) {
            if (action == NackAction::kPark || attempts[i] >= s.max_deliveries) {
              park.push_back(held[i]);
            } else {
              retry.push_back(held[i]);
              delays.push_back(absl::ToInt64Milliseconds(delay ? *delay
                                                               : RetryDelay(s, attempts[i])));
            }
          }
          if (!park.empty()) {
            tx.exec_prepared(kPark, group, Int8Array(park).Param(),
                             action == NackAction::kPark
                                 ? why
                                 : absl::StrCat("delivered ", s.max_deliveries,
                                                " times (max_deliveries) without an ack; the "
                                                "last: ",
                                                why));
          }
          if (!retry.empty()) {
            tx.exec_prepared(kRetry, group, Int8Array(retry).Param(),
                             Int8Array(delays).Param(), why);
          }
        });
  }

  absl::StatusOr<std::optional<StreamAssignment>> Assignment(
      const std::string& group, const std::string& consumer,
      const std::vector<std::string>& members, size_t max_streams) override {
    NoteMembers(group, members);
    LOGBOOK_RETURN_IF_ERROR(CloseDone(group));
    return Run(TenantOfGroup(group),
               absl::StrCat("assign streams of consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::optional<StreamAssignment>> {
                 pqxx::read_transaction tx(conn);
                 const pqxx::result d = tx.exec_prepared(kDefinition, group);
                 if (d.empty()) return NoGroup(NameOfGroup(group));
                 if (DefinitionFromRow(d[0]).settings.strategy != GroupStrategy::kPerStream) {
                   return std::nullopt;
                 }
                 const pqxx::row r = tx.exec_prepared1(kAssignment, group, consumer,
                                                       TextArray(members).Param(),
                                                       static_cast<int64_t>(max_streams));
                 StreamAssignment a;
                 a.members = members;
                 a.streams_owned = r[0].as<uint64_t>();
                 a.stream_ids = TextArrayField(r[1]);
                 return a;
               });
  }

  absl::StatusOr<std::optional<absl::Time>> NextDue(const std::string& group) override {
    LOGBOOK_RETURN_IF_ERROR(CloseDone(group));
    return Run(TenantOfGroup(group),
               absl::StrCat("schedule consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::optional<absl::Time>> {
                 pqxx::nontransaction tx(conn);
                 const pqxx::field f =
                     tx.exec_prepared1(kNextDue, group, Interval(kLeaseGrace))[0];
                 std::optional<absl::Time> due;
                 if (!f.is_null()) due = absl::FromUnixMicros(f.as<int64_t>());
                 absl::MutexLock lock(&books_mu_);
                 for (auto it = books_.lower_bound({group, ""});
                      it != books_.end() && it->first.first == group; ++it) {
                   for (std::optional<absl::Time> next :
                        {it->second.book.NextDeadline(),
                         it->second.runs.NextDue(it->second.ack_timeout)}) {
                     if (next && (!due || *next < *due)) due = next;
                   }
                 }
                 return due;
               });
  }

  absl::StatusOr<std::vector<ParkedEntry>> ListParked(const std::string& group, uint64_t after,
                                                       size_t max_count) override {
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("group", NameOfGroup(group)));
    return Run(TenantOfGroup(group),
               absl::StrCat("list parked events of group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<std::vector<ParkedEntry>> {
                 pqxx::work tx(conn);
                 if (tx.exec_prepared(kDefinition, group).empty())
                   return NoGroup(NameOfGroup(group));
                 std::vector<ParkedEntry> out;
                 for (const auto& r :
                      tx.exec_prepared(kListParked, group,
                                       static_cast<int64_t>(std::min<uint64_t>(
                                           after, std::numeric_limits<int64_t>::max())),
                                       static_cast<int64_t>(max_count))) {
                   out.push_back({r[0].as<uint64_t>(), r[1].as<std::string>(),
                                  r[2].as<uint64_t>(), r[3].as<std::string>(),
                                  r[4].as<uint32_t>(), r[5].as<std::string>(),
                                  absl::FromUnixMicros(r[6].as<int64_t>())});
                 }
                 return out;
               });
  }

  absl::StatusOr<uint64_t> ReplayParked(const std::string& group,
                                        const ParkedSelection& selection) override {
    return MoveParked(group, selection, kReplay, "replay parked events");
  }

  absl::StatusOr<uint64_t> DropParked(const std::string& group,
                                      const ParkedSelection& selection) override {
    return MoveParked(group, selection, kDrop, "drop parked events");
  }

 private:
  // One call's ROUND_ROBIN leases and PER_STREAM runs, by (group, session).
  struct SessionBook {
    std::string consumer;
    LeaseBook book;
    RunBook runs;
    absl::Duration ack_timeout = absl::Seconds(30);  // The group's, when a run was claimed.
  };
  // Counts a group's RunBooks made in memory, by consumer, until CloseDone
  // writes them.
  struct RunCounts {
    int64_t acked = 0;
    int64_t delivered = 0;
  };
  // A run that ended in memory, for CloseDone to end in the database.
  struct EndedRun {
    std::string session;
    RunBook::Ended ended;
  };
  // What a claim read first (kClaimContext).
  struct ClaimContext {
    int64_t scanned_to = 0;
    int64_t head = 0;
    int64_t held = 0;  // Pending events the session holds.
  };
  // A lease whose every event was settled, to close.
  struct DoneLease {
    int64_t lease_id;
    std::string session;
    std::string consumer;
    uint64_t acked;
  };

  // Acks what is not out in a run: events in the session's leases (in
  // memory, once the others are acked) and pending events it holds.
  absl::Status AckOthers(const std::string& group, const std::string& consumer,
                         const std::string& session, const std::vector<uint64_t>& ids) {
    // Leased ids are settled in memory, once the others are acked (all or
    // nothing); one that left its lease meanwhile is acked as the others.
    auto [leased, others] = SplitLeased(group, session, ids);
    if (!others.empty()) LOGBOOK_RETURN_IF_ERROR(AckPending(group, consumer, session, others));
    if (leased.empty()) return absl::OkStatus();
    std::vector<LeaseBook::Closed> closed;
    std::vector<uint64_t> late;
    {
      absl::MutexLock lock(&books_mu_);
      auto it = books_.find({group, session});
      for (uint64_t id : leased) {
        if (it == books_.end() || !it->second.book.LeaseOf(id)) late.push_back(id);
      }
      if (it != books_.end()) closed = it->second.book.Settle(leased, /*acked=*/true);
    }
    if (!closed.empty()) {
      absl::MutexLock lock(&books_mu_);
      std::vector<DoneLease>& done = done_[group];
      for (const LeaseBook::Closed& c : closed)
        done.push_back({c.lease_id, session, consumer, c.acked});
    }
    if (late.empty()) return absl::OkStatus();
    return AckPending(group, consumer, session, late);
  }

  // Acks the events of `ids` out in the session's runs, counting them; the
  // runs that end are queued for EndRuns, or (`done`, when given) the
  // rows of those done are added there for the caller. Returns the ids that
  // are not out in a run (any more).
  std::vector<uint64_t> AckRuns(const std::string& group, const std::string& consumer,
                                const std::string& session, const std::vector<uint64_t>& ids,
                                std::vector<int64_t>* done) {
    std::vector<uint64_t> late;
    absl::MutexLock lock(&books_mu_);
    auto it = books_.find({group, session});
    if (it == books_.end()) return ids;
    for (uint64_t id : ids) {
      if (!it->second.runs.Holds(id)) late.push_back(id);
    }
    const RunBook::Acked acked = it->second.runs.Ack(ids);
    run_counts_[group][consumer].acked += static_cast<int64_t>(acked.acked);
    for (const RunBook::Ended& e : acked.ended) {
      if (done != nullptr && e.rest_from == 0) {
        done->push_back(e.key);
      } else {
        ended_runs_[group].push_back({session, e});
      }
    }
    return late;
  }

  // Acks `ids` (pending rows the session holds: single events, or runs
  // done) and claims the next event of each stream acked for the consumer
  // (kAckContinue). When the session does not hold them all, nothing
  // changes, and then: `strict`, AckPending names the first it does not
  // hold; else (runs done, one taken back meanwhile) the rows it still
  // holds go with the next EndRuns.
  absl::StatusOr<std::vector<GroupDelivery>> Continue(const std::string& group,
                                                      const std::string& consumer,
                                                      const std::string& session,
                                                      const std::vector<int64_t>& ids,
                                                      bool strict) {
    std::vector<GroupDelivery> next;
    LOGBOOK_ASSIGN_OR_RETURN(
        const uint64_t acked,
        Run(TenantOfGroup(group), absl::StrCat("ack in consumer group '", NameOfGroup(group), "'"),
            [&](pqxx::connection& conn) -> absl::StatusOr<uint64_t> {
              std::vector<int64_t> through;
              absl::Duration ack_timeout;
              const absl::Time claimed_at = absl::Now();
              uint64_t n = 0;
              next.clear();
              {
                pqxx::nontransaction tx(conn);
                const pqxx::result r = tx.exec_prepared(kAckContinue, group, consumer, session,
                                                        Int8Array(ids).Param(), member_timeout_);
                for (const auto& row : r) {
                  n = row[kEventColumns + 2].as<uint64_t>();
                  if (row[0].is_null()) continue;  // Acked, and nothing claimed.
                  GroupDelivery& d = next.emplace_back();
                  ToEvent(row, d.event);
                  d.attempt = row[kEventColumns].as<uint32_t>();
                  const pqxx::field t = row[kEventColumns + 1];
                  through.push_back(t.is_null() ? -1 : t.as<int64_t>());
                  ack_timeout = absl::Milliseconds(row[kEventColumns + 3].as<int64_t>());
                }
              }
              LOGBOOK_RETURN_IF_ERROR(AdoptRuns(conn, group, consumer, session, next, through,
                                                ack_timeout, claimed_at));
              return n;
            }));
    if (acked == ids.size()) return next;
    if (!strict) {
      absl::MutexLock lock(&books_mu_);
      for (int64_t key : ids) {
        RunBook::Ended done;
        done.key = key;
        ended_runs_[group].push_back({session, done});
      }
      return std::vector<GroupDelivery>{};
    }
    // Nothing changed: AckPending names the id the session does not hold
    // (or acks them all, if they are held by now: delivered to it again).
    std::vector<uint64_t> wanted(ids.begin(), ids.end());
    LOGBOOK_RETURN_IF_ERROR(AckPending(group, consumer, session, wanted));
    return std::vector<GroupDelivery>{};
  }

  // Acks pending events the session holds: FAILED_PRECONDITION naming the
  // first it does not hold, and then nothing changes.
  absl::Status AckPending(const std::string& group, const std::string& consumer,
                          const std::string& session, const std::vector<uint64_t>& ids) {
    const std::vector<int64_t> wanted = ToSqlIds(ids);
    LOGBOOK_ASSIGN_OR_RETURN(
        const uint64_t acked,
        Run(TenantOfGroup(group), absl::StrCat("ack in consumer group '", NameOfGroup(group), "'"),
            [&](pqxx::connection& conn) -> absl::StatusOr<uint64_t> {
              pqxx::nontransaction tx(conn);
              return tx.exec_prepared1(kAck, group, consumer, session, Int8Array(wanted).Param())[0]
                  .as<uint64_t>();
            }));
    if (acked == ids.size()) return absl::OkStatus();
    // Nothing changed: Settle names the id it does not hold (or acks them
    // all, if they are held by now: delivered to this session again).
    return Settle(group, consumer, session, ids, "ack",
                  [&](pqxx::work& tx, const GroupSettings&, const std::vector<int64_t>&,
                      const std::vector<uint32_t>&) {
                    tx.exec_prepared(kAck, group, consumer, session, Int8Array(wanted).Param());
                  });
  }

  // `ids` split into those open in the session's leases and the others.
  std::pair<std::vector<uint64_t>, std::vector<uint64_t>> SplitLeased(
      const std::string& group, const std::string& session, const std::vector<uint64_t>& ids) {
    std::vector<uint64_t> leased, others;
    absl::MutexLock lock(&books_mu_);
    auto it = books_.find({group, session});
    for (uint64_t id : ids) {
      (it != books_.end() && it->second.book.LeaseOf(id) ? leased : others).push_back(id);
    }
    return {std::move(leased), std::move(others)};
  }

  // Before a nack: the ids out in the session's runs leave them and become
  // pending events the session holds (RunBook::Split).
  absl::Status SplitRunsAt(const std::string& group, const std::string& consumer,
                           const std::string& session, const std::vector<uint64_t>& ids) {
    std::vector<RunBook::Split> splits;
    {
      absl::MutexLock lock(&books_mu_);
      auto it = books_.find({group, session});
      if (it == books_.end()) return absl::OkStatus();
      splits = it->second.runs.SplitAt(ids);
    }
    if (splits.empty()) return absl::OkStatus();
    return Run(TenantOfGroup(group),
               absl::StrCat("nack in consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
                 pqxx::work tx(conn);
                 WriteSplits(tx, group, consumer, session, splits);
                 tx.commit();
                 return true;
               })
        .status();
  }

  // Before a nack: the ids open in the session's leases leave them and
  // become pending events the session holds, delivered once.
  absl::Status HoldLeased(const std::string& group, const std::string& consumer,
                          const std::string& session, const std::vector<uint64_t>& ids) {
    std::map<int64_t, std::vector<int64_t>> by_lease;
    std::vector<LeaseBook::Closed> closed;
    {
      absl::MutexLock lock(&books_mu_);
      auto it = books_.find({group, session});
      if (it == books_.end()) return absl::OkStatus();
      std::vector<uint64_t> leased;
      for (uint64_t id : ids) {
        if (std::optional<int64_t> lease = it->second.book.LeaseOf(id)) {
          by_lease[*lease].push_back(static_cast<int64_t>(id));
          leased.push_back(id);
        }
      }
      if (leased.empty()) return absl::OkStatus();
      closed = it->second.book.Settle(leased, /*acked=*/false);
    }
    return Run(TenantOfGroup(group),
               absl::StrCat("nack in consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
                 pqxx::work tx(conn);
                 for (const auto& [lease, held] : by_lease) {
                   tx.exec_prepared(kLeaseHold, group, consumer, session, lease,
                                    Int8Array(held).Param());
                 }
                 for (const LeaseBook::Closed& c : closed) {
                   CloseLease(tx, group, consumer, session, c, "");
                 }
                 tx.commit();
                 return true;
               })
        .status();
  }

  // Closes a lease the session held (`why`: what its open events go back
  // for); nothing if another instance took it back meanwhile.
  void CloseLease(pqxx::transaction_base& tx, const std::string& group,
                  const std::string& consumer, const std::string& session,
                  const LeaseBook::Closed& c, const std::string& why) {
    std::vector<int64_t> open(c.open.begin(), c.open.end());
    tx.exec_prepared(kLeaseClose, group, consumer, session, c.lease_id,
                     static_cast<int64_t>(c.acked), Int8Array(open).Param(), why);
  }

  // A group updated or deleted here: its upkeep is due.
  void ForgetUpkeep(const std::string& group) {
    absl::MutexLock lock(&books_mu_);
    round_robin_upkept_.erase(group);
    taken_back_.erase(group);
  }

  // Whether a PER_STREAM Fill should take back what instances that are gone
  // held: a second after the last time (then it counts as done).
  bool TakeBackDue(const std::string& group) {
    absl::MutexLock lock(&books_mu_);
    absl::Time& last = taken_back_[group];
    if (absl::Now() < last + kRoundRobinUpkeep) return false;
    last = absl::Now();
    return true;
  }

  // A group deleted here: what its RunBooks had yet to write is moot.
  void ForgetRuns(const std::string& group) {
    absl::MutexLock lock(&books_mu_);
    ended_runs_.erase(group);
    run_counts_.erase(group);
    members_seen_.erase(group);
  }

  // Writes what the group's RunBooks did (EndRuns), then closes the leases
  // of `group` whose every event was settled here (Ack queues them, so that
  // an ack costs no round trip and one statement closes what several acks
  // completed). Called before whatever reads or changes the group's leases,
  // runs or checkpoint; on failure they stay queued.
  absl::Status CloseDone(const std::string& group) {
    LOGBOOK_RETURN_IF_ERROR(EndRuns(group));
    std::vector<DoneLease> done;
    {
      absl::MutexLock lock(&books_mu_);
      auto it = done_.find(group);
      if (it == done_.end()) return absl::OkStatus();
      done.swap(it->second);
      done_.erase(it);
    }
    std::vector<int64_t> ids, acked;
    std::vector<std::string> sessions, consumers;
    for (const DoneLease& d : done) {
      ids.push_back(d.lease_id);
      sessions.push_back(d.session);
      consumers.push_back(d.consumer);
      acked.push_back(static_cast<int64_t>(d.acked));
    }
    absl::Status s =
        Run(TenantOfGroup(group), absl::StrCat("ack in consumer group '", NameOfGroup(group), "'"),
            [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
              pqxx::nontransaction tx(conn);
              tx.exec_prepared(kLeaseCloseDone, group, Int8Array(ids).Param(),
                               TextArray(sessions).Param(), TextArray(consumers).Param(),
                               Int8Array(acked).Param());
              return true;
            })
            .status();
    if (!s.ok()) {
      absl::MutexLock lock(&books_mu_);
      std::vector<DoneLease>& queue = done_[group];
      queue.insert(queue.end(), done.begin(), done.end());
    }
    return s;
  }

  // Writes what the group's RunBooks did since the last call: runs that
  // ended (their rows go, or go back from where they stopped) and the
  // counts. On failure they stay queued.
  absl::Status EndRuns(const std::string& group) {
    std::vector<EndedRun> ended;
    std::map<std::string, RunCounts> counts;
    {
      absl::MutexLock lock(&books_mu_);
      if (auto it = ended_runs_.find(group); it != ended_runs_.end()) {
        ended.swap(it->second);
        ended_runs_.erase(it);
      }
      if (auto it = run_counts_.find(group); it != run_counts_.end()) {
        counts.swap(it->second);
        run_counts_.erase(it);
      }
    }
    if (ended.empty() && counts.empty()) return absl::OkStatus();
    std::vector<int64_t> keys, rest_from, rest_events, acked, delivered;
    std::vector<std::string> sessions, consumers;
    for (const EndedRun& e : ended) {
      keys.push_back(e.ended.key);
      sessions.push_back(e.session);
      rest_from.push_back(static_cast<int64_t>(e.ended.rest_from));
      rest_events.push_back(e.ended.rest_events);
    }
    for (const auto& [consumer, c] : counts) {
      consumers.push_back(consumer);
      acked.push_back(c.acked);
      delivered.push_back(c.delivered);
    }
    absl::Status s =
        Run(TenantOfGroup(group), absl::StrCat("ack in consumer group '", NameOfGroup(group), "'"),
            [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
              pqxx::work tx(conn);
              if (!keys.empty()) {
                tx.exec_prepared(kRunEnd, group, Int8Array(keys).Param(),
                                 TextArray(sessions).Param(), Int8Array(rest_from).Param(),
                                 Int8Array(rest_events).Param());
              }
              if (!consumers.empty()) {
                tx.exec_prepared(kRunCount, group, TextArray(consumers).Param(),
                                 Int8Array(acked).Param(), Int8Array(delivered).Param());
              }
              tx.commit();
              return true;
            })
            .status();
    if (!s.ok()) {
      absl::MutexLock lock(&books_mu_);
      std::vector<EndedRun>& queue = ended_runs_[group];
      queue.insert(queue.end(), ended.begin(), ended.end());
      for (const auto& [consumer, c] : counts) {
        run_counts_[group][consumer].acked += c.acked;
        run_counts_[group][consumer].delivered += c.delivered;
      }
    }
    return s;
  }

  // Claims are given the live members `members`: when they differ from the
  // last ones, every run out in the group ends after its event out, and
  // what is left of it goes back to be claimed by whoever hashing gives its
  // stream to now (a stream moves only when nothing of it is out).
  void NoteMembers(const std::string& group, const std::vector<std::string>& members) {
    absl::MutexLock lock(&books_mu_);
    auto [seen, added] = members_seen_.try_emplace(group, members);
    if (added || seen->second == members) return;
    seen->second = members;
    for (auto it = books_.lower_bound({group, ""}); it != books_.end() && it->first.first == group;
         ++it) {
      it->second.runs.Truncate();
    }
  }

  // `ids` split into events out in the session's runs and the others.
  std::pair<std::vector<uint64_t>, std::vector<uint64_t>> SplitRuns(
      const std::string& group, const std::string& session, const std::vector<uint64_t>& ids) {
    std::vector<uint64_t> in_runs, others;
    absl::MutexLock lock(&books_mu_);
    auto it = books_.find({group, session});
    for (uint64_t id : ids) {
      (it != books_.end() && it->second.runs.Holds(id) ? in_runs : others).push_back(id);
    }
    return {std::move(in_runs), std::move(others)};
  }

  // Records the claimed rows that are runs (`through[i]` >= 0: the run's
  // last version) in the session's RunBook, with their other events, read
  // now. `claimed_at`: when the claim began (the rows' leases run from a
  // little later).
  absl::Status AdoptRuns(pqxx::connection& conn, const std::string& group,
                         const std::string& consumer, const std::string& session,
                         const std::vector<GroupDelivery>& firsts,
                         const std::vector<int64_t>& through, absl::Duration ack_timeout,
                         absl::Time claimed_at) {
    std::vector<size_t> runs;
    std::vector<std::string> streams;
    std::vector<int64_t> after, last;
    for (size_t i = 0; i < firsts.size(); ++i) {
      if (through[i] < 0) continue;
      runs.push_back(i);
      if (through[i] > static_cast<int64_t>(firsts[i].event.stream_version)) {
        streams.push_back(firsts[i].event.stream_id);
        after.push_back(static_cast<int64_t>(firsts[i].event.stream_version));
        last.push_back(through[i]);
      }
    }
    if (runs.empty()) return absl::OkStatus();
    std::map<std::string, std::vector<RecordedEvent>> rest;  // By stream, in version order.
    if (!streams.empty()) {
      pqxx::nontransaction tx(conn);
      for (RecordedEvent& e :
           ToEvents(tx.exec_prepared(kRunEvents, group, TextArray(streams).Param(),
                                     Int8Array(after).Param(), Int8Array(last).Param()))) {
        rest[e.stream_id].push_back(std::move(e));
      }
    }
    absl::MutexLock lock(&books_mu_);
    SessionBook& b = books_[{group, session}];
    b.consumer = consumer;
    b.ack_timeout = ack_timeout;
    for (size_t i : runs) {
      const GroupDelivery& first = firsts[i];
      std::vector<RecordedEvent> mine;
      if (auto it = rest.find(first.event.stream_id); it != rest.end()) {
        for (RecordedEvent& e : it->second) {
          if (e.stream_version > first.event.stream_version &&
              static_cast<int64_t>(e.stream_version) <= through[i]) {
            mine.push_back(std::move(e));
          }
        }
      }
      b.runs.Add(static_cast<int64_t>(first.event.global_position), first, claimed_at + ack_timeout,
                 claimed_at + ack_timeout + kRunLease, std::move(mine));
    }
    return absl::OkStatus();
  }

  // Writes runs split off in memory (RunBook::Split) held by `session`.
  void WriteSplits(pqxx::transaction_base& tx, const std::string& group,
                   const std::string& consumer, const std::string& session,
                   const std::vector<RunBook::Split>& splits) {
    if (splits.empty()) return;
    const absl::Time now = absl::Now();
    std::vector<int64_t> keys, positions, attempts, deadlines, rest_from, rest_events;
    for (const RunBook::Split& sp : splits) {
      keys.push_back(sp.key);
      positions.push_back(static_cast<int64_t>(sp.position));
      attempts.push_back(sp.attempts);
      deadlines.push_back(
          absl::ToUnixMicros(sp.deadline == absl::InfinitePast() ? now : sp.deadline));
      rest_from.push_back(static_cast<int64_t>(sp.rest_from));
      rest_events.push_back(sp.rest_events);
    }
    tx.exec_prepared(kRunSplit, group, consumer, session, Int8Array(keys).Param(),
                     Int8Array(positions).Param(), Int8Array(attempts).Param(),
                     Int8Array(deadlines).Param(), Int8Array(rest_from).Param(),
                     Int8Array(rest_events).Param());
  }

  // A claim's care of the session's runs: events out past their deadline
  // split off (the database's claims then deliver them again, counted),
  // rows renewed, and next events ready appended to `out`.
  void RunUpkeep(pqxx::transaction_base& tx, const std::string& group, const std::string& consumer,
                 const std::string& session, absl::Duration ack_timeout,
                 std::vector<GroupDelivery>& out, bool& split) {
    std::vector<RunBook::Split> expired;
    std::vector<int64_t> renew;
    const absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&books_mu_);
      auto it = books_.find({group, session});
      if (it == books_.end() || it->second.runs.runs() == 0) return;
      expired = it->second.runs.Expire(now);
      renew = it->second.runs.ToRenew(now, ack_timeout);
    }
    WriteSplits(tx, group, consumer, session, expired);
    split = !expired.empty();
    std::vector<int64_t> renewed;
    if (!renew.empty()) {
      for (const auto& r : tx.exec_prepared(kRunRenew, group, session, Int8Array(renew).Param(),
                                            static_cast<int64_t>(Millis(ack_timeout)))) {
        renewed.push_back(r[0].as<int64_t>());
      }
    }
    absl::MutexLock lock(&books_mu_);
    auto it = books_.find({group, session});
    if (it == books_.end()) return;
    if (!renew.empty()) it->second.runs.Renewed(renew, renewed, now + ack_timeout + kRunLease);
    std::vector<GroupDelivery> ready = it->second.runs.TakeReady(absl::Now(), ack_timeout);
    run_counts_[group][consumer].delivered += static_cast<int64_t>(ready.size());
    for (GroupDelivery& d : ready) out.push_back(std::move(d));
  }

  // ROUND_ROBIN: the next fresh events of the target, `room` at most, as a
  // lease to the session, appended to `out`. Looks a window at
  // a time until it finds some or gets to the head, so a sparse filter
  // moves the frontier along.
  absl::Status TakeLease(pqxx::connection& conn, const std::string& group,
                         const std::string& consumer, const std::string& session,
                         const GroupDefinition& d, int64_t room, std::vector<GroupDelivery>& out) {
    const GroupSettings& s = d.settings;
    const absl::Time deadline = absl::Now() + s.ack_timeout;
    pqxx::work tx(conn);
    const pqxx::result f = tx.exec_prepared(kLeaseFrontier, group);
    if (f.empty()) return NoGroup(NameOfGroup(group));
    int64_t after = f[0][0].as<int64_t>();
    const int64_t head = f[0][1].as<int64_t>();
    // Small windows first: however the planner reads the window (before
    // the table's statistics exist it reads all of it and sorts), it costs
    // little; a window that had nothing doubles the next.
    int64_t window = std::max<int64_t>(room * 4, 1000);
    int64_t lease_id = 0, through = 0, n = 0;
    while (n == 0 && after < head) {
      const int64_t bound = std::min(head, after + window);
      const pqxx::row r = tx.exec_prepared1(kLeaseTake, group, consumer, session, after, bound,
                                            room, static_cast<int64_t>(Millis(s.ack_timeout)));
      n = r[2].as<int64_t>();
      if (n > 0) {
        lease_id = r[0].as<int64_t>();
        through = r[1].as<int64_t>();
      } else {
        after = bound;
      }
      window = std::min(window * 2, kScanWindow);
    }
    tx.commit();
    if (n == 0) return absl::OkStatus();
    std::vector<RecordedEvent> events = ReadLeased(group, d.target, after, through, n);
    if (static_cast<int64_t>(events.size()) != n) {
      pqxx::nontransaction read(conn);
      events = ToEvents(read.exec_prepared(kLeaseEvents, group, after, through, n));
    }
    std::vector<uint64_t> positions;
    positions.reserve(events.size());
    for (RecordedEvent& e : events) {
      positions.push_back(e.global_position);
      out.push_back({std::move(e), 1});
    }
    absl::MutexLock lock(&books_mu_);
    SessionBook& b = books_[{group, session}];
    b.consumer = consumer;
    b.book.Add(lease_id, positions, deadline);
    return absl::OkStatus();
  }

  // The `n` events of `group`'s `target` in (`after`, `through`], read
  // from lease_events_'s store; none when there is no such store or it
  // could not read them all.
  std::vector<RecordedEvent> ReadLeased(const std::string& group, const EventFilter& target,
                                        int64_t after, int64_t through, int64_t n) {
    EventStore* store = lease_events_ ? lease_events_(static_cast<uint64_t>(through)) : nullptr;
    if (store == nullptr) return {};
    ReadAllQuery q;
    q.from_position = static_cast<uint64_t>(after) + 1;
    q.until_position = static_cast<uint64_t>(through);
    q.max_count = static_cast<uint64_t>(n);
    q.filter = target;
    q.tenant = TenantOfGroup(group);
    absl::StatusOr<std::vector<RecordedEvent>> events = store->ReadAll(q);
    if (!events.ok()) return {};
    return *std::move(events);
  }

  // What a session's book held: its leases, and its runs split at their
  // events out.
  struct Held {
    std::string session;
    std::vector<LeaseBook::Closed> leases;
    std::vector<RunBook::Split> runs;
  };

  // Removes the session's book: what it held.
  Held TakeBook(const std::string& group, const std::string& session) {
    absl::MutexLock lock(&books_mu_);
    auto it = books_.find({group, session});
    if (it == books_.end()) return {session, {}, {}};
    Held held{session, it->second.book.TakeAll(), it->second.runs.TakeAll()};
    books_.erase(it);
    return held;
  }

  // Removes the books of `consumer`'s sessions other than `session`.
  std::vector<Held> TakeBooks(const std::string& group, const std::string& consumer,
                              const std::string& session) {
    std::vector<Held> out;
    absl::MutexLock lock(&books_mu_);
    for (auto it = books_.lower_bound({group, ""});
         it != books_.end() && it->first.first == group;) {
      if (it->second.consumer == consumer && it->first.second != session) {
        out.push_back({it->first.second, it->second.book.TakeAll(), it->second.runs.TakeAll()});
        it = books_.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  // Ack and nack: checks, in one transaction, that the consumer holds every
  // id (FAILED_PRECONDITION naming the first it does not; nothing changes),
  // then runs `settle` on them with their attempts.
  template <typename SettleFn>
  absl::Status Settle(const std::string& group, const std::string& consumer,
                      const std::string& session, const std::vector<uint64_t>& ids,
                      absl::string_view verb, SettleFn&& settle) {
    return Run(TenantOfGroup(group),
               absl::StrCat(verb, " in consumer group '", NameOfGroup(group), "'"),
               [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
                 pqxx::work tx(conn);
                 const pqxx::result d = tx.exec_prepared(kDefinition, group);
                 if (d.empty()) return NoGroup(NameOfGroup(group));
                 const GroupSettings s = DefinitionFromRow(d[0]).settings;
                 const std::vector<int64_t> wanted = ToSqlIds(ids);
                 const pqxx::result held =
                     tx.exec_prepared(kHeld, group, consumer, session, Int8Array(wanted).Param());
                 std::vector<int64_t> held_ids;
                 std::vector<uint32_t> attempts;
                 for (const auto& r : held) {
                   held_ids.push_back(r[0].as<int64_t>());
                   attempts.push_back(r[1].as<uint32_t>());
                 }
                 if (held_ids.size() != wanted.size()) {
                   std::vector<int64_t> sorted = held_ids;
                   std::sort(sorted.begin(), sorted.end());
                   for (int64_t id : wanted) {
                     if (!std::binary_search(sorted.begin(), sorted.end(), id)) {
                       return absl::FailedPreconditionError(absl::StrCat(
                           verb, ": delivery ", id, " is not held by consumer '", consumer,
                           "' (settled already, or delivered again after its ack_timeout)"));
                     }
                   }
                 }
                 settle(tx, s, held_ids, attempts);
                 tx.commit();
                 return true;
               })
        .status();
  }

  absl::StatusOr<uint64_t> MoveParked(const std::string& group, const ParkedSelection& selection,
                                      const char* statement, absl::string_view what) {
    LOGBOOK_RETURN_IF_ERROR(ValidateGroupName("selection.group", NameOfGroup(group)));
    const std::string op = absl::StrCat(what, " of group '", NameOfGroup(group), "'");
    if (!selection.ids.empty()) {
      const std::vector<int64_t> ids = ToSqlIds(selection.ids);
      return Run(TenantOfGroup(group), op, [&](pqxx::connection& conn) -> absl::StatusOr<uint64_t> {
        pqxx::work tx(conn);
        if (tx.exec_prepared(kDefinition, group).empty()) return NoGroup(NameOfGroup(group));
        const pqxx::binarystring param = Int8Array(ids).Param();
        if (const pqxx::result r = tx.exec_prepared(kNotParked, group, param); !r.empty()) {
          return absl::NotFoundError(absl::StrCat("delivery ", r[0][0].as<int64_t>(),
                                                  " is not parked in group '", NameOfGroup(group),
                                                  "'"));
        }
        const uint64_t n =
            tx.exec_prepared(statement, group, param, static_cast<int64_t>(ids.size()))
                .affected_rows();
        tx.commit();
        return n;
      });
    }
    // All, a batch per transaction: bounded memory however many there are.
    uint64_t moved = 0;
    for (;;) {
      int64_t batch = kParkedBatch;
      if (selection.max_count > 0) {
        batch = static_cast<int64_t>(std::min<uint64_t>(batch, selection.max_count - moved));
      }
      if (batch == 0) return moved;
      LOGBOOK_ASSIGN_OR_RETURN(
          const uint64_t n,
          Run(TenantOfGroup(group), op, [&](pqxx::connection& conn) -> absl::StatusOr<uint64_t> {
            pqxx::work tx(conn);
            if (tx.exec_prepared(kDefinition, group).empty()) return NoGroup(NameOfGroup(group));
            const uint64_t n =
                tx.exec_prepared(statement, group, static_cast<const char*>(nullptr), batch)
                    .affected_rows();
            tx.commit();
            return n;
          }));
      moved += n;
      if (n < static_cast<uint64_t>(batch)) return moved;
    }
  }

  // Whether consumer_group_pending needs fresh statistics now that a group
  // has `pending` events: when that is at least kAnalyzeFrom and twice what
  // it was at the last ANALYZE here (or the table shrank well below it since,
  // and grew again). Estimates of a few rows where there are thousands make
  // the planner read the whole table in a loop.
  bool ShouldAnalyze(int64_t pending) {
    absl::MutexLock lock(&books_mu_);
    if (pending < analyzed_at_ / 4) analyzed_at_ = pending;
    if (pending < kAnalyzeFrom || pending < 2 * analyzed_at_) return false;
    analyzed_at_ = pending;
    return true;
  }

  // Runs `fn` on a connection set to `tenant` (the group's: TenantOfGroup),
  // translating what libpqxx throws.
  template <typename Fn>
  auto Run(absl::string_view tenant, absl::string_view operation, Fn&& fn)
      -> decltype(fn(std::declval<pqxx::connection&>())) {
    LOGBOOK_ASSIGN_OR_RETURN(ConnectionPool::Lease lease, pool_.Acquire(tenant));
    auto result = CatchPqxx(operation, [&] { return fn(*lease); });
    if (absl::IsUnavailable(result.status()) || !lease->is_open()) {
      lease.Discard();
      pool_.DiscardIdle();
    }
    return result;
  }

  const LeaseEventsStore lease_events_;
  const std::shared_ptr<StoreObserver> observer_;  // Before what it observes.
  ConnectionPool pool_;
  const std::string member_timeout_;  // StoreOptions::member_timeout, as an interval.
  absl::Mutex books_mu_;  // Never held across a database call.
  std::map<std::pair<std::string, std::string>, SessionBook> books_ ABSL_GUARDED_BY(books_mu_);
  std::map<std::string, std::vector<DoneLease>> done_ ABSL_GUARDED_BY(books_mu_);  // By group.
  std::map<std::string, std::vector<EndedRun>> ended_runs_ ABSL_GUARDED_BY(books_mu_);
  std::map<std::string, std::map<std::string, RunCounts>> run_counts_ ABSL_GUARDED_BY(books_mu_);
  // The live members each group's claims were last given (a change ends
  // the runs out after their event out: NoteMembers).
  std::map<std::string, std::vector<std::string>> members_seen_ ABSL_GUARDED_BY(books_mu_);
  // When Fill last did a ROUND_ROBIN group's upkeep, by group (forgotten
  // when the group is updated or deleted here).
  std::map<std::string, absl::Time> round_robin_upkept_ ABSL_GUARDED_BY(books_mu_);
  // When Fill last took back a PER_STREAM group's runs and leases, by group.
  std::map<std::string, absl::Time> taken_back_ ABSL_GUARDED_BY(books_mu_);
  // A group's pending events at the last ANALYZE this instance asked for.
  int64_t analyzed_at_ ABSL_GUARDED_BY(books_mu_) = 0;
};

}  // namespace

std::string GroupKey(absl::string_view tenant, absl::string_view name) {
  // A name holding '/' (which validation refuses) stays qualified, so that
  // it cannot pass for the key of another tenant's group.
  if (tenant == kDefaultTenant && name.find('/') == absl::string_view::npos) {
    return std::string(name);
  }
  return absl::StrCat(tenant, "/", name);
}

std::string TenantOfGroup(absl::string_view key) {
  const size_t slash = key.find('/');
  return std::string(slash == absl::string_view::npos ? absl::string_view(kDefaultTenant)
                                                      : key.substr(0, slash));
}

std::string NameOfGroup(absl::string_view key) {
  const size_t slash = key.find('/');
  return std::string(slash == absl::string_view::npos ? key : key.substr(slash + 1));
}

absl::StatusOr<std::unique_ptr<ConsumerGroups>> ConsumerGroups::Open(
    const StoreOptions& options, LeaseEventsStore lease_events) {
  if (options.member_timeout < kMinMemberTimeout || options.member_timeout > kMaxMemberTimeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "member timeout: ", absl::FormatDuration(options.member_timeout),
        " is outside 3s to 1h (members are renewed every second)"));
  }
  auto groups = std::make_unique<PgConsumerGroups>(options, std::move(lease_events));
  LOGBOOK_RETURN_IF_ERROR(groups->Ping());
  return groups;
}

}  // namespace logbook::store
