#include "verifier.h"

#include <pqxx/pqxx>

#include <algorithm>
#include <functional>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "logbook/store/checkpoints.h"
#include "pg_array.h"
#include "receipts.h"

namespace logbook::store {
namespace {

#define LOGBOOK_VERIFY_COLUMNS                                                              \
  "SELECT e.global_position, e.stream_id, e.stream_version, e.event_id::text, e.event_type," \
  " e.content_type, (extract(epoch FROM e.recorded_at) * 1000000)::bigint, e.schema_version," \
  " coalesce(e.correlation_id, ''), coalesce(e.causation_id, ''), e.data, e.metadata,"      \
  " e.redaction_reason, e.receipt_previous_hash, e.receipt_hash, e.data_digest,"            \
  " e.metadata_digest, e.tenant, e.written_by FROM logbook.event_log e"

// $1 stream, $2 from version, $3 until version, $4 limit.
constexpr char kVerifyStreamPage[] = "verify_stream_page";
constexpr char kVerifyStreamPageSql[] =
    LOGBOOK_VERIFY_COLUMNS
    " WHERE e.stream_id = $1 AND e.stream_version BETWEEN $2 AND $3"
    " ORDER BY e.stream_version LIMIT $4";
// $1 after position, $2 until position, $3 limit.
constexpr char kVerifyAllPage[] = "verify_all_page";
constexpr char kVerifyAllPageSql[] =
    LOGBOOK_VERIFY_COLUMNS
    " WHERE e.global_position > $1 AND e.global_position <= $2"
    " ORDER BY e.global_position LIMIT $3";

constexpr char kVerifyStart[] = "verify_start";
// Also whether the session's tenant holds the whole log (no other tenant
// wrote a stream): only then are the log's positions and checkpoints its
// to check, as other tenants' positions are holes in its view.
constexpr char kVerifyStartSql[] =
    "SELECT h.last_position, s.version, s.head_hash,"
    " NOT EXISTS (SELECT FROM logbook.tenants t"
    "             WHERE t.tenant <> current_setting('logbook.tenant', true))"
    " FROM logbook.log_head h LEFT JOIN logbook.streams s ON s.stream_id = $1";

// The checkpoints signed by key id $1, oldest first, each with the log's
// head in the same snapshot: none may be beyond it (add_checkpoint refuses
// that, and the head never moves back).
constexpr char kVerifyCheckpoints[] = "verify_checkpoints";
constexpr char kVerifyCheckpointsSql[] =
    "SELECT id, log_position, log_hash, (extract(epoch FROM created_at) * 1000000)::bigint,"
    " key_id, signature, (SELECT last_position FROM logbook.log_head)"
    " FROM logbook.checkpoints WHERE key_id = $1 ORDER BY log_position";

// The chunk of what the checkpoint at $1 hashed that follows position $2
// or comes later (migrations/0015).
constexpr char kVerifyCheckpointReceipts[] = "verify_checkpoint_receipts";
constexpr char kVerifyCheckpointReceiptsSql[] =
    "SELECT after_position, receipts FROM logbook.checkpoint_receipts"
    " WHERE log_position = $1 AND after_position >= $2 ORDER BY after_position LIMIT 1";

// The first event beyond what the log (and, for $1 <> '', the stream)
// recorded, read in one snapshot with the heads it is compared to.
constexpr char kVerifyBeyond[] = "verify_beyond";
constexpr char kVerifyBeyondSql[] =
    "SELECT e.stream_id, e.stream_version, e.global_position FROM logbook.event_log e"
    " WHERE e.global_position > (SELECT last_position FROM logbook.log_head)"
    "    OR ($1 <> '' AND e.stream_id = $1"
    "        AND e.stream_version > (SELECT version FROM logbook.streams WHERE stream_id = $1))"
    "    OR ($1 = '' AND NOT EXISTS (SELECT FROM logbook.streams s WHERE s.stream_id = e.stream_id)"
    "        AND e.global_position <= $2)"
    " ORDER BY e.global_position LIMIT 1";

// The last position of the recorded gap from $1 on, if any (logbook.position_gaps):
// positions a writer took and never used.
constexpr char kVerifyGap[] = "verify_gap";
constexpr char kVerifyGapSql[] =
    "SELECT last_position FROM logbook.position_gaps WHERE first_position = $1";

// A deleted event takes its receipt with it; these locate it from what is
// left (migrations/functions/missing_event_at.sql, unused_position.sql). The
// stream and version that were at position $1:
constexpr char kVerifyMissingEvent[] = "verify_missing_event";
constexpr char kVerifyMissingEventSql[] =
    "SELECT stream_id, stream_version FROM logbook.missing_event_at($1)";
// The lowest position between $1 and $2 (exclusive) with no event and no
// gap, if exactly $3 positions there are like that.
constexpr char kVerifyUnusedPosition[] = "verify_unused_position";
constexpr char kVerifyUnusedPositionSql[] = "SELECT logbook.unused_position($1, $2, $3)";
// The same for stream $1's last $3 versions, after position $2: where its
// first missing one was.
constexpr char kVerifyUnusedTail[] = "verify_unused_tail";
constexpr char kVerifyUnusedTailSql[] =
    "SELECT logbook.unused_position($2, last_position + 1, $3) FROM logbook.streams"
    " WHERE stream_id = $1";
// The previous hash in stream $1's receipt after position $2, else the
// stream's head. By position: a version may be what was edited.
constexpr char kVerifyNextLink[] = "verify_next_link";
constexpr char kVerifyNextLinkSql[] =
    "SELECT coalesce((SELECT n.receipt_previous_hash FROM (SELECT * FROM logbook.event_log"
    " WHERE stream_id = $1 AND global_position > $2 OFFSET 0) n"  // The stream's rows only.
    " ORDER BY n.global_position LIMIT 1),"
    " (SELECT head_hash FROM logbook.streams WHERE stream_id = $1))";
// Whether ($1, $2) exists at a position above $3.
constexpr char kVerifyLaterVersion[] = "verify_later_version";
constexpr char kVerifyLaterVersionSql[] =
    "SELECT EXISTS (SELECT FROM logbook.event_log WHERE stream_id = $1 AND stream_version = $2"
    " AND global_position > $3)";
// The position of version $2 of stream $1.
constexpr char kVerifyVersionPosition[] = "verify_version_position";
constexpr char kVerifyVersionPositionSql[] =
    "SELECT global_position FROM logbook.event_log WHERE stream_id = $1 AND stream_version = $2";
constexpr char kVerifyAudited[] = "verify_audited";
constexpr char kVerifyAuditedSql[] =
    "SELECT EXISTS (SELECT FROM logbook.event_log WHERE stream_id = '$audit'"
    " AND event_type = 'EventRedacted' AND redaction_reason IS NULL"
    " AND convert_from(data, 'UTF8')::jsonb ->> 'global_position' = $1::text)";
constexpr char kVerifyStreamCount[] = "verify_stream_count";
constexpr char kVerifyStreamCountSql[] = "SELECT count(*) FROM logbook.streams";
// $1 after stream id, $2 limit.
constexpr char kVerifyStreamsPage[] = "verify_streams_page";
constexpr char kVerifyStreamsPageSql[] =
    "SELECT stream_id, version, head_hash, last_position, state, first_version"
    " FROM logbook.streams"
    " WHERE stream_id > $1 ORDER BY stream_id LIMIT $2";

std::string Bytes(const pqxx::field& f) { return f.is_null() ? std::string() : ByteaField(f); }

// One page row.
struct Row {
  uint64_t position, version;
  std::string stream_id, event_id, type, content_type, correlation_id, causation_id, data,
      metadata;
  int64_t recorded_at_micros;
  std::optional<uint32_t> schema_version;
  std::optional<std::string> redaction_reason;
  bool has_receipt;  // All four columns set (NOT NULL, unless someone dropped that).
  std::string previous_hash, hash, data_digest, metadata_digest;
  std::string tenant;
  std::optional<std::string> written_by;  // Unset: a v1 receipt.
};

Row ToRow(const pqxx::row& f) {
  Row r;
  r.position = f[0].as<uint64_t>();
  r.stream_id = f[1].as<std::string>();
  r.version = f[2].as<uint64_t>();
  r.event_id = f[3].as<std::string>();
  r.type = f[4].as<std::string>();
  r.content_type = f[5].as<std::string>();
  r.recorded_at_micros = f[6].as<int64_t>();
  if (!f[7].is_null()) r.schema_version = f[7].as<uint32_t>();
  r.correlation_id = f[8].as<std::string>();
  r.causation_id = f[9].as<std::string>();
  r.data = Bytes(f[10]);
  r.metadata = Bytes(f[11]);
  if (!f[12].is_null()) r.redaction_reason = f[12].as<std::string>();
  r.has_receipt = !f[13].is_null() && !f[14].is_null() && !f[15].is_null() && !f[16].is_null();
  r.previous_hash = Bytes(f[13]);
  r.hash = Bytes(f[14]);
  r.data_digest = Bytes(f[15]);
  r.metadata_digest = Bytes(f[16]);
  r.tenant = f[17].is_null() ? std::string() : f[17].as<std::string>();
  if (!f[18].is_null()) r.written_by = f[18].as<std::string>();
  return r;
}

std::string Hash(const Row& r, absl::string_view data_digest, absl::string_view metadata_digest) {
  const std::string id = UuidBytes(r.event_id);
  return ReceiptHash({r.previous_hash, r.stream_id, r.version, id, r.type, r.content_type,
                      r.recorded_at_micros, r.schema_version, r.correlation_id, r.causation_id,
                      data_digest, metadata_digest, r.tenant,
                      r.written_by ? std::optional<absl::string_view>(*r.written_by)
                                   : std::nullopt});
}

// A stream's newest StreamDeleted record in $audit.
struct Deletion {
  uint64_t version = 0;   // deleted_version.
  bool tombstone = false;
  uint64_t position = 0;  // The record's.
};

// Why the row of a stream (state, version, first version) contradicts its
// newest StreamDeleted record, or "" when it does not: a tombstone stays
// tombstoned at its version; after a soft delete reads start past the
// deleted version, and the stream is still deleted at it or was written
// again since.
std::string Contradiction(const Deletion& d, const std::string& state, uint64_t version,
                          uint64_t first_version) {
  const bool holds =
      d.tombstone
          ? state == "tombstoned" && version == d.version
          : first_version > d.version && ((state == "soft_deleted" && version == d.version) ||
                                          (state == "active" && version > d.version));
  if (holds) return "";
  return absl::StrCat("its StreamDeleted record at position ", d.position, " deleted it ",
                      d.tombstone ? "for good" : "", d.tombstone ? " " : "", "at version ",
                      d.version, ", but its row says ", state, " at version ", version,
                      " reading from version ", first_version);
}

// Where a stream's chain stands.
struct Chain {
  uint64_t next_version = 0;
  std::string hash = ZeroHash();
  uint64_t last_position = 0;
};

class PgVerification final : public Verification {
 public:
  PgVerification(std::string stream_id, uint64_t until, std::string head_hash, size_t passes,
                 VerifyRunner run, bool whole_log, std::vector<Checkpoint> checkpoints,
                 bool beyond_head, std::string public_key)
      : stream_id_(std::move(stream_id)), until_(until), head_hash_(std::move(head_hash)),
        whole_log_(whole_log), run_(std::move(run)), public_key_(std::move(public_key)),
        checkpoints_(std::move(checkpoints)), beyond_head_(beyond_head), passes_(passes),
        stop_at_(until) {
    report_.events_total = stream_id_.empty() ? until_ : until_ + 1;
    report_.whole_log = stream_id_.empty() && whole_log_;
  }

  absl::StatusOr<bool> Step(size_t max_events) override {
    if (done_) return true;
    const std::string op = absl::StrCat("verify ", stream_id_.empty() ? "$all" : stream_id_);
    return run_(op, [&](pqxx::connection& conn) -> absl::StatusOr<bool> {
      pqxx::nontransaction tx(conn);
      done_ = stream_id_.empty() ? StepAll(tx, max_events) : StepStream(tx, max_events);
      if (report_.first_broken) done_ = true;
      if (done_ && !report_.first_broken && !stream_id_.empty()) report_.head_hash = head_hash_;
      return done_;
    });
  }

  const VerifyReport& report() const override { return report_; }

 private:
  void Break(const std::string& stream, uint64_t version, uint64_t position, BreakReason reason,
             std::string detail) {
    if (!report_.first_broken) {
      report_.first_broken = BrokenEvent{stream, version, position, reason, std::move(detail)};
    }
  }

  // Checks one event of its stream's chain; false when it broke it.
  bool Check(pqxx::transaction_base& tx, const Row& r, Chain& c) {
    if (!r.has_receipt) {
      Break(r.stream_id, r.version, r.position, BreakReason::kEventInserted,
            "the event has no receipt");
      return false;
    }
    const std::string data_digest = Sha256(r.data), metadata_digest = Sha256(r.metadata);
    if (Hash(r, r.data_digest, r.metadata_digest) != r.hash) {
      // Which side changed? The receipt, if its digests were edited or the
      // next link does not confirm its hash; otherwise the event.
      const std::string confirm =
          Bytes(tx.exec_prepared(kVerifyNextLink, r.stream_id, static_cast<int64_t>(r.position))
                    [0][0]);
      if (Hash(r, data_digest, metadata_digest) == r.hash || confirm != r.hash) {
        Break(r.stream_id, r.version, r.position, BreakReason::kReceiptChanged,
              "the receipt does not match its own contents");
      } else {
        Break(r.stream_id, r.version, r.position, BreakReason::kEventChanged,
              "a hashed field of the event no longer matches its receipt");
      }
      return false;
    }
    if (r.previous_hash != c.hash) {
      if (r.version == 0) {
        Break(r.stream_id, r.version, r.position, BreakReason::kReceiptChanged,
              "the first receipt does not start the chain");
      } else {  // This receipt is intact, so the one before it was rewritten.
        Break(r.stream_id, r.version - 1, c.last_position, BreakReason::kReceiptChanged,
              "the next receipt does not link to it");
      }
      return false;
    }
    if (!r.redaction_reason) {
      if (data_digest != r.data_digest) {
        Break(r.stream_id, r.version, r.position, BreakReason::kDataChanged,
              absl::StrCat("data digest ", Hex(data_digest), " != receipt's ",
                           Hex(r.data_digest)));
        return false;
      }
      if (metadata_digest != r.metadata_digest) {
        Break(r.stream_id, r.version, r.position, BreakReason::kMetadataChanged,
              absl::StrCat("metadata digest ", Hex(metadata_digest), " != receipt's ",
                           Hex(r.metadata_digest)));
        return false;
      }
    } else if (!r.data.empty() || !r.metadata.empty()) {
      Break(r.stream_id, r.version, r.position, BreakReason::kDataChanged,
            "a redacted event has data again");
      return false;
    } else if (!tx.exec_prepared(kVerifyAudited, static_cast<int64_t>(r.position))[0][0]
                    .as<bool>()) {
      Break(r.stream_id, r.version, r.position, BreakReason::kRedactionNotAudited,
            "no EventRedacted record in $audit");
      return false;
    }
    c.next_version = r.version + 1;
    c.hash = r.hash;
    c.last_position = r.position;
    ++report_.events_checked;
    return true;
  }

  bool StepStream(pqxx::transaction_base& tx, size_t max_events) {
    Chain& c = chain_;
    report_.streams_checked = 1;
    if (c.next_version <= until_) {
      pqxx::result page =
          tx.exec_prepared(kVerifyStreamPage, stream_id_, static_cast<int64_t>(c.next_version),
                           static_cast<int64_t>(until_), static_cast<int64_t>(max_events));
      for (const auto& f : page) {
        const Row r = ToRow(f);
        if (r.version > c.next_version) {
          const pqxx::field at =
              tx.exec_prepared(kVerifyUnusedPosition, static_cast<int64_t>(c.last_position),
                               static_cast<int64_t>(r.position),
                               static_cast<int64_t>(r.version - c.next_version))[0][0];
          Break(stream_id_, c.next_version, at.is_null() ? 0 : at.as<uint64_t>(),
                BreakReason::kEventMissing, absl::StrCat("version ", c.next_version, " is gone"));
          return true;
        }
        if (r.position <= c.last_position) {
          Break(stream_id_, r.version, r.position, BreakReason::kVersionsOutOfSequence,
                absl::StrCat("position ", r.position, " does not follow the previous version's ",
                             c.last_position));
          return true;
        }
        if (!Check(tx, r, c)) return true;
      }
      if (page.size() == max_events && c.next_version <= until_) return false;
    }
    // The end: the stream's recorded head, nothing beyond it (an event after
    // the recorded version comes first, as verify_stream() walking the
    // stream's versions meets it), and the head's hash.
    if (c.next_version <= until_) {
      const pqxx::field at =
          tx.exec_prepared(kVerifyUnusedTail, stream_id_, static_cast<int64_t>(c.last_position),
                           static_cast<int64_t>(until_ + 1 - c.next_version))[0][0];
      Break(stream_id_, c.next_version, at.is_null() ? 0 : at.as<uint64_t>(),
            BreakReason::kEventMissing,
            absl::StrCat("the stream records version ", until_, ", the log ends at ",
                         static_cast<int64_t>(c.next_version) - 1));
    }
    CheckBeyond(tx);
    if (head_hash_ != c.hash) {
      Break(stream_id_, c.next_version - 1, c.last_position, BreakReason::kReceiptChanged,
            "the stream's head hash differs from its last receipt");
    }
    return true;
  }

  // $all walks the log once per pass, each pass checking the chains of
  // its share of the streams (by hash of the stream id), so that at most
  // about streams / passes chains are in memory; positions are checked in
  // the first pass. The break reported is the one at the lowest position
  // any pass found, as one walk would have found it; then an event beyond
  // what was recorded; then the first stream whose head does not match.
  bool StepAll(pqxx::transaction_base& tx, size_t max_events) {
    while (pass_ < passes_) {
      if (!events_done_) {
        if (!WalkEvents(tx, max_events)) return false;
        events_done_ = true;
      }
      if (!event_break_ && !WalkHeads(tx, max_events)) return false;
      ++pass_;
      chains_.clear();
      last_position_ = 0;
      streams_after_.clear();
      events_done_ = false;
    }
    if (event_break_) {
      report_.first_broken = event_break_->second;
    } else {
      CheckBeyond(tx);
      if (!report_.first_broken && head_break_) report_.first_broken = head_break_;
    }
    return true;
  }

  bool InPass(const std::string& stream_id) const {
    return passes_ == 1 || std::hash<std::string>{}(stream_id) % passes_ == pass_;
  }

  static bool FromCheckpoint(const BrokenEvent& b) {
    return b.reason == BreakReason::kCheckpointMismatch ||
           b.reason == BreakReason::kCheckpointSignatureInvalid;
  }

  // Takes the break just found at position `at` out of the report as a
  // candidate; later passes need only look below it, or at it when the
  // first pass found it by checkpoint: a receipt's own break there is more
  // precise, and one walk meets it first. Returns true.
  bool EventBreak(uint64_t at) {
    const bool by_checkpoint = FromCheckpoint(*report_.first_broken);
    if (!event_break_ || at < event_break_->first ||
        (at == event_break_->first && FromCheckpoint(event_break_->second) && !by_checkpoint)) {
      event_break_.emplace(at, *report_.first_broken);
    }
    report_.first_broken.reset();
    stop_at_ = by_checkpoint ? at : at - 1;
    return true;
  }

  // Remembers what a StreamDeleted record says (a record that does not
  // parse is the receipts' business, not this).
  void NoteDeletion(const Row& r) {
    const nlohmann::json j = nlohmann::json::parse(r.data, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("stream_id") || !j["stream_id"].is_string() ||
        !j.contains("deleted_version") || !j["deleted_version"].is_number_unsigned() ||
        !j.contains("tombstone") || !j["tombstone"].is_boolean()) {
      return;
    }
    deletions_[j["stream_id"].get<std::string>()] = {j["deleted_version"].get<uint64_t>(),
                                                     j["tombstone"].get<bool>(), r.position};
  }

  // Whether checkpoint `c`'s signature verifies; reports the break if not.
  bool SignatureHolds(const Checkpoint& c) {
    if (VerifySignature(public_key_, CheckpointMessage(c.log_position, c.log_hash, c.created_at),
                        c.signature)) {
      return true;
    }
    Break("", 0, c.log_position, BreakReason::kCheckpointSignatureInvalid,
          absl::StrCat("checkpoint #", c.id, " at position ", c.log_position,
                       " names this server's key, but its signature does not verify"));
    return false;
  }

  // Checks the log hash against every checkpoint up to position `through`
  // not checked yet: the walk has hashed every event up to it. False, with
  // the break reported, at the first that fails.
  bool PassCheckpoints(pqxx::transaction_base& tx, uint64_t through) {
    for (; next_checkpoint_ < checkpoints_.size() &&
           checkpoints_[next_checkpoint_].log_position <= through;
         ++next_checkpoint_) {
      const Checkpoint& c = checkpoints_[next_checkpoint_];
      if (!SignatureHolds(c)) return false;
      if (const std::optional<CheckpointEntryView> removed = NextSigned(tx);
          removed && removed->position <= c.log_position) {
        RemovedSinceSigned(tx, c, *removed);
        return false;
      }
      if (c.log_hash != log_hash_) {
        const uint64_t after =
            next_checkpoint_ == 0 ? 0 : checkpoints_[next_checkpoint_ - 1].log_position;
        Break("", 0, c.log_position, BreakReason::kCheckpointMismatch,
              absl::StrCat("the log up to position ", c.log_position,
                           " does not hash to signed checkpoint #", c.id, " (",
                           absl::FormatTime(c.created_at), "): an event at a position in (",
                           after, ", ", c.log_position,
                           "] was changed, inserted or removed after it was signed"));
        return false;
      }
      ++report_.checkpoints_checked;
      report_.latest_checkpoint = c;
    }
    return true;
  }

  // What the next checkpoint to check hashed (migrations/0015), one chunk
  // at a time: its next entry not compared yet, if it recorded any and
  // they are the ones it signed. Entries at or before the previous
  // checkpoint (a checkpoint that started again from the log's beginning)
  // are passed over: that one vouched for them.
  std::optional<CheckpointEntryView> NextSigned(pqxx::transaction_base& tx) {
    if (next_checkpoint_ >= checkpoints_.size()) return std::nullopt;
    const Checkpoint& c = checkpoints_[next_checkpoint_];
    if (signed_for_ != next_checkpoint_) {
      signed_for_ = next_checkpoint_;
      signed_entries_.clear();
      signed_offset_ = 0;
      signed_after_ = 0;
      signed_ended_ = false;
      signed_trusted_ = std::nullopt;
    }
    const uint64_t range_start =
        next_checkpoint_ == 0 ? 0 : checkpoints_[next_checkpoint_ - 1].log_position;
    for (;;) {
      while (signed_offset_ + kCheckpointEntrySize <= signed_entries_.size()) {
        const CheckpointEntryView e =
            ParseCheckpointEntry(absl::string_view(signed_entries_).substr(signed_offset_));
        if (e.position > range_start) return e;
        signed_offset_ += kCheckpointEntrySize;
      }
      if (signed_ended_) return std::nullopt;
      const pqxx::result chunk =
          tx.exec_prepared(kVerifyCheckpointReceipts, static_cast<int64_t>(c.log_position),
                           static_cast<int64_t>(signed_after_));
      if (chunk.empty()) {
        signed_ended_ = true;
        return std::nullopt;
      }
      // Trusted only as a whole: before the first entry is compared.
      if (!signed_trusted_) signed_trusted_ = SignedRecordIsAuthentic(tx, c);
      if (!*signed_trusted_) {
        signed_ended_ = true;
        return std::nullopt;
      }
      signed_entries_ = Bytes(chunk[0][1]);
      signed_offset_ = 0;
      signed_after_ = ParseCheckpointEntry(absl::string_view(signed_entries_)
                                               .substr(signed_entries_.size() -
                                                       kCheckpointEntrySize))
                          .position;
    }
  }

  // Whether checkpoint `c`'s recorded entries, chunk after chunk, hash from
  // where it started (the log's beginning or the previous checkpoint this
  // key signed) to its signed log hash. Reads them all, a chunk at a time.
  bool SignedRecordIsAuthentic(pqxx::transaction_base& tx, const Checkpoint& c) {
    std::string hash;
    uint64_t after = 0;
    bool first = true;
    for (;;) {
      const pqxx::result chunk =
          tx.exec_prepared(kVerifyCheckpointReceipts, static_cast<int64_t>(c.log_position),
                           static_cast<int64_t>(after));
      if (chunk.empty()) return !first && hash == c.log_hash;
      const uint64_t chunk_after = chunk[0][0].as<uint64_t>();
      const std::string entries = Bytes(chunk[0][1]);
      if (entries.empty() || entries.size() % kCheckpointEntrySize != 0) return false;
      if (first) {
        if (chunk_after == 0) {
          hash = ZeroHash();
        } else {
          auto start = std::find_if(checkpoints_.begin(), checkpoints_.end(),
                                    [&](const Checkpoint& k) { return k.log_position == chunk_after; });
          if (start == checkpoints_.end() || start->log_position >= c.log_position) return false;
          hash = start->log_hash;
        }
        first = false;
      } else if (chunk_after != after) {
        return false;  // Chunks follow each other.
      }
      hash = NextLogHashOfEntries(std::move(hash), entries);
      after = ParseCheckpointEntry(absl::string_view(entries).substr(entries.size() -
                                                                     kCheckpointEntrySize))
                  .position;
    }
  }

  // The change, if event `r` is not what the next checkpoint signed at its
  // position: an event it did not hash (inserted), one with another
  // receipt (rewritten), or one it hashed at a lower position that is gone.
  std::optional<BrokenEvent> DiffersFromSigned(pqxx::transaction_base& tx, const Row& r) {
    const std::optional<CheckpointEntryView> e = NextSigned(tx);
    if (!e) return std::nullopt;  // Nothing recorded: the log hash alone tells.
    const Checkpoint& c = checkpoints_[next_checkpoint_];
    if (e->position < r.position) return Removed(tx, c, *e);
    std::string what;
    if (e->position > r.position) {
      what = "the event is not among those it hashed";
    } else if (e->receipt_hash != r.hash) {
      what = absl::StrCat("its receipt hash ", Hex(r.hash), " is not the ",
                          Hex(e->receipt_hash), " it hashed here");
    } else {
      signed_offset_ += kCheckpointEntrySize;
      return std::nullopt;
    }
    return BrokenEvent{r.stream_id, r.version, r.position, BreakReason::kCheckpointMismatch,
                       absl::StrCat(SignedBy(c), ": ", what)};
  }

  BrokenEvent Removed(pqxx::transaction_base& tx, const Checkpoint& c,
                      const CheckpointEntryView& e) {
    const pqxx::row at =
        tx.exec_prepared(kVerifyMissingEvent, static_cast<int64_t>(e.position))[0];
    return BrokenEvent{at[0].is_null() ? "" : at[0].as<std::string>(),
                       at[1].is_null() ? 0 : at[1].as<uint64_t>(), e.position,
                       BreakReason::kCheckpointMismatch,
                       absl::StrCat(SignedBy(c), ": it hashed an event here (receipt hash ",
                                    Hex(e.receipt_hash), "), which is gone")};
  }

  static std::string SignedBy(const Checkpoint& c) {
    return absl::StrCat("changed since signed checkpoint #", c.id, " at position ",
                        c.log_position, " (", absl::FormatTime(c.created_at), ")");
  }

  void RemovedSinceSigned(pqxx::transaction_base& tx, const Checkpoint& c,
                          const CheckpointEntryView& e) {
    BrokenEvent b = Removed(tx, c, e);
    Break(b.stream_id, b.stream_version, b.global_position, b.reason, std::move(b.detail));
  }

  bool SignedBreak(BrokenEvent b) {
    const uint64_t at = b.global_position;
    Break(b.stream_id, b.stream_version, at, b.reason, std::move(b.detail));
    return EventBreak(at);
  }

  // After the walk: false, with the break reported, when a checkpoint this
  // key signed is beyond the log's head (the log lost events it hashed).
  bool LogEndsAsSigned(pqxx::transaction_base& tx) {
    if (!beyond_head_ || next_checkpoint_ + 1 != checkpoints_.size() ||
        stop_at_ != until_) {
      return true;
    }
    const Checkpoint& c = checkpoints_.back();
    if (!SignatureHolds(c)) return false;
    if (const std::optional<CheckpointEntryView> removed = NextSigned(tx)) {
      RemovedSinceSigned(tx, c, *removed);
      return false;
    }
    Break("", 0, c.log_position, BreakReason::kCheckpointMismatch,
          absl::StrCat("the log ends at position ", until_, ", before signed checkpoint #", c.id,
                       " at position ", c.log_position, " (", absl::FormatTime(c.created_at),
                       "): events it hashed after ", until_, " were removed"));
    return false;
  }

  // One page of this pass's walk of the log; true when the pass is through.
  bool WalkEvents(pqxx::transaction_base& tx, size_t max_events) {
    pqxx::result page = tx.exec_prepared(kVerifyAllPage, static_cast<int64_t>(last_position_),
                                         static_cast<int64_t>(stop_at_),
                                         static_cast<int64_t>(max_events));
    for (const auto& f : page) {
      const Row r = ToRow(f);
      if (pass_ == 0 && !PassCheckpoints(tx, r.position - 1)) {
        return EventBreak(report_.first_broken->global_position);
      }
      if (pass_ == 0 && whole_log_ && r.position != last_position_ + 1) {
        // Only a recorded gap may lie between two events.
        const pqxx::result gap =
            tx.exec_prepared(kVerifyGap, static_cast<int64_t>(last_position_ + 1));
        const uint64_t expected = gap.empty() ? last_position_ + 1
                                              : gap[0][0].as<uint64_t>() + 1;
        if (r.position < expected) {
          Break(r.stream_id, r.version, r.position, BreakReason::kEventInserted,
                "the event is at a position no writer used (a recorded gap)");
          return EventBreak(r.position);
        }
        if (r.position != expected) {
          MissingPosition(tx, expected);
          return EventBreak(r.position);
        }
      }
      last_position_ = r.position;
      if (pass_ == 0) {
        log_hash_ = NextLogHash(log_hash_, r.position, r.hash);
        if (r.stream_id == kAuditStream && r.type == "StreamDeleted") NoteDeletion(r);
      }
      // What the next checkpoint signed at this position; a difference is
      // named after the event's own checks, which say more.
      std::optional<BrokenEvent> unsigned_change;
      if (pass_ == 0) unsigned_change = DiffersFromSigned(tx, r);
      if (!InPass(r.stream_id)) {
        if (unsigned_change) return SignedBreak(*std::move(unsigned_change));
        continue;
      }
      auto [it, fresh] = chains_.try_emplace(r.stream_id);
      Chain& c = it->second;
      if (fresh) ++report_.streams_checked;
      if (r.version != c.next_version) {
        const bool later =
            r.version > c.next_version &&
            tx.exec_prepared(kVerifyLaterVersion, r.stream_id,
                             static_cast<int64_t>(c.next_version),
                             static_cast<int64_t>(r.position))[0][0]
                .as<bool>();
        if (r.version < c.next_version || later) {
          Break(r.stream_id, r.version, r.position, BreakReason::kVersionsOutOfSequence,
                absl::StrCat("version ", r.version, " at position ", r.position,
                             " where version ", c.next_version, " was due"));
        } else {
          Break(r.stream_id, c.next_version, 0, BreakReason::kEventMissing,
                absl::StrCat("version ", c.next_version, " is gone"));
        }
        return EventBreak(r.position);
      }
      if (!Check(tx, r, c)) return EventBreak(r.position);
      if (unsigned_change) return SignedBreak(*std::move(unsigned_change));
    }
    if (page.size() == max_events && last_position_ < stop_at_) return false;
    if (pass_ == 0 && (!PassCheckpoints(tx, stop_at_) || !LogEndsAsSigned(tx))) {
      return EventBreak(report_.first_broken->global_position);
    }
    if (pass_ == 0 && whole_log_ && last_position_ < stop_at_) {
      MissingPosition(tx, last_position_ + 1);
      return EventBreak(last_position_ + 1);
    }
    return true;
  }

  // One page of this pass's streams: every stream's recorded head must be
  // where its chain ends. True when the pass is through.
  bool WalkHeads(pqxx::transaction_base& tx, size_t max_events) {
    pqxx::result streams = tx.exec_prepared(kVerifyStreamsPage, streams_after_,
                                            static_cast<int64_t>(max_events));
    for (const auto& f : streams) {
      streams_after_ = f[0].as<std::string>();
      if (!InPass(streams_after_) || f[3].as<uint64_t>() > until_) continue;  // Or written since.
      const Chain& c = chains_[streams_after_];
      const uint64_t version = f[1].as<uint64_t>();
      std::string contradiction;
      if (version + 1 < c.next_version) {
        // The log goes on past the version the stream records.
        const pqxx::result at = tx.exec_prepared(kVerifyVersionPosition, streams_after_,
                                                 static_cast<int64_t>(version + 1));
        Break(streams_after_, version + 1, at.empty() ? 0 : at[0][0].as<uint64_t>(),
              BreakReason::kEventInserted,
              "the event is beyond the head the stream and the log recorded");
      } else if (version + 1 > c.next_version) {
        Break(streams_after_, c.next_version, 0, BreakReason::kEventMissing,
              absl::StrCat("the stream records version ", version, ", the log ends at ",
                           static_cast<int64_t>(c.next_version) - 1));
      } else if (Bytes(f[2]) != c.hash) {
        Break(streams_after_, version, c.last_position, BreakReason::kReceiptChanged,
              "the stream's head hash differs from its last receipt");
      } else if (auto d = deletions_.find(streams_after_);
                 d != deletions_.end() &&
                 !(contradiction = Contradiction(d->second, f[4].as<std::string>(), version,
                                                 f[5].as<uint64_t>()))
                      .empty()) {
        Break(streams_after_, d->second.version, 0, BreakReason::kStreamStateChanged,
              contradiction);
      } else {
        continue;
      }
      // The first of this pass (streams come in id order); keep the first of all.
      if (!head_break_ || report_.first_broken->stream_id < head_break_->stream_id) {
        head_break_ = report_.first_broken;
      }
      report_.first_broken.reset();
      return true;
    }
    return streams.size() < max_events;
  }

  void MissingPosition(pqxx::transaction_base& tx, uint64_t position) {
    const pqxx::row r = tx.exec_prepared(kVerifyMissingEvent, static_cast<int64_t>(position))[0];
    Break(r[0].is_null() ? "" : r[0].as<std::string>(), r[1].is_null() ? 0 : r[1].as<uint64_t>(),
          position, BreakReason::kEventMissing, absl::StrCat("no event at position ", position));
  }

  void CheckBeyond(pqxx::transaction_base& tx) {
    pqxx::result r = tx.exec_prepared(kVerifyBeyond, stream_id_, static_cast<int64_t>(until_));
    if (!r.empty()) {
      Break(r[0][0].as<std::string>(), r[0][1].as<uint64_t>(), r[0][2].as<uint64_t>(),
            BreakReason::kEventInserted,
            "the event is beyond the head the stream and the log recorded");
    }
  }

  const std::string stream_id_;
  // The stream's version, or the log's head position.
  const uint64_t until_;
  const std::string head_hash_;  // The stream's recorded head hash.
  // $all: the tenant holds the whole log, so positions and checkpoints are
  // checked too.
  const bool whole_log_;
  const VerifyRunner run_;
  VerifyReport report_;
  bool done_ = false;
  Chain chain_;  // A stream target's.
  // $all: the checkpoints signed by public_key_, oldest first, and the log
  // hash of the events walked (first pass).
  const std::string public_key_;
  const std::vector<Checkpoint> checkpoints_;
  const bool beyond_head_;  // The last of checkpoints_ is beyond the log's head.
  size_t next_checkpoint_ = 0;
  std::string log_hash_ = ZeroHash();
  // $all, first pass: what checkpoints_[signed_for_] hashed (NextSigned).
  size_t signed_for_ = std::numeric_limits<size_t>::max();
  std::string signed_entries_;  // The chunk being compared.
  size_t signed_offset_ = 0;    // Its next entry.
  uint64_t signed_after_ = 0;   // The next chunk follows this position.
  bool signed_ended_ = false;
  std::optional<bool> signed_trusted_;
  // $all: each deleted stream's newest StreamDeleted record (first pass).
  std::unordered_map<std::string, Deletion> deletions_;
  // $all, see StepAll.
  const size_t passes_;
  size_t pass_ = 0;
  std::unordered_map<std::string, Chain> chains_;  // This pass's streams'.
  uint64_t last_position_ = 0;                     // This pass checked up to here.
  uint64_t stop_at_;                               // Passes look no further than here.
  bool events_done_ = false;
  std::string streams_after_;
  std::optional<std::pair<uint64_t, BrokenEvent>> event_break_;  // At the lowest position.
  std::optional<BrokenEvent> head_break_;                        // Of the first stream.
};

}  // namespace

void PrepareVerifyStatements(pqxx::connection& conn) {
  conn.prepare(kVerifyStart, kVerifyStartSql);
  conn.prepare(kVerifyStreamPage, kVerifyStreamPageSql);
  conn.prepare(kVerifyAllPage, kVerifyAllPageSql);
  conn.prepare(kVerifyBeyond, kVerifyBeyondSql);
  conn.prepare(kVerifyGap, kVerifyGapSql);
  conn.prepare(kVerifyMissingEvent, kVerifyMissingEventSql);
  conn.prepare(kVerifyUnusedPosition, kVerifyUnusedPositionSql);
  conn.prepare(kVerifyUnusedTail, kVerifyUnusedTailSql);
  conn.prepare(kVerifyNextLink, kVerifyNextLinkSql);
  conn.prepare(kVerifyLaterVersion, kVerifyLaterVersionSql);
  conn.prepare(kVerifyVersionPosition, kVerifyVersionPositionSql);
  conn.prepare(kVerifyAudited, kVerifyAuditedSql);
  conn.prepare(kVerifyStreamsPage, kVerifyStreamsPageSql);
  conn.prepare(kVerifyStreamCount, kVerifyStreamCountSql);
  conn.prepare(kVerifyCheckpoints, kVerifyCheckpointsSql);
  conn.prepare(kVerifyCheckpointReceipts, kVerifyCheckpointReceiptsSql);
}

absl::StatusOr<std::unique_ptr<Verification>> NewVerification(
    pqxx::transaction_base& tx, const std::string& stream_id, size_t streams_per_pass,
    const SigningKey* key, VerifyRunner run) {
  const pqxx::row start = tx.exec_prepared(kVerifyStart, stream_id)[0];
  uint64_t until = start[0].as<uint64_t>();
  std::string head_hash;
  if (!stream_id.empty()) {
    if (start[1].is_null()) {
      return absl::NotFoundError(absl::StrCat("stream '", stream_id, "' does not exist"));
    }
    until = start[1].as<uint64_t>();
    head_hash = Bytes(start[2]);
  }
  size_t passes = 1;
  if (stream_id.empty()) {
    const auto streams = tx.exec_prepared(kVerifyStreamCount)[0][0].as<uint64_t>();
    const size_t per_pass = std::max<size_t>(1, streams_per_pass);
    passes = std::max<size_t>(1, (streams + per_pass - 1) / per_pass);
  }
  // The checkpoints up to `until`, and after them the first beyond the
  // log's head, if any: the log lost its end since that was signed.
  std::vector<Checkpoint> checkpoints;
  bool beyond_head = false;
  const bool whole_log = start[3].as<bool>();
  if (stream_id.empty() && whole_log && key != nullptr) {
    const pqxx::binarystring key_id(key->key_id().data(), key->key_id().size());
    for (const auto& r : tx.exec_prepared(kVerifyCheckpoints, key_id)) {
      const uint64_t position = r[1].as<uint64_t>();
      beyond_head = position > r[6].as<uint64_t>();
      if (position > until && !beyond_head) break;  // Signed since `until` was read.
      checkpoints.push_back({r[0].as<uint64_t>(), position, Bytes(r[2]),
                             absl::FromUnixMicros(r[3].as<int64_t>()), Bytes(r[4]), Bytes(r[5])});
      if (beyond_head) break;
    }
  }
  return std::make_unique<PgVerification>(stream_id, until, std::move(head_hash), passes,
                                          std::move(run), whole_log, std::move(checkpoints),
                                          beyond_head,
                                          key != nullptr ? key->public_key() : "");
}

}  // namespace logbook::store
