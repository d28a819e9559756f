// Signed checkpoints against a real PostgreSQL: the store signs the log's
// head with its Ed25519 key, continues from its own newest checkpoint, and
// verifying $all checks the log against every checkpoint it signed, which
// catches what receipts alone cannot: the owner rewriting an event together
// with its receipt and the stream's head.
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "events.h"
#include "keys.h"
#include "logbook/store/checkpoints.h"
#include "logbook/store/event_store.h"
#include "receipts.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::AsRole;
using testing::Event;
using testing::Exec;
using testing::QueryValue;

StoreOptions WithKey(const std::string& private_pem) {
  StoreOptions options;
  options.signing_key = *SigningKey::FromPem(private_pem);
  return options;
}

class CheckpointsTest : public testing::StoreTest {
 protected:
  CheckpointsTest() : StoreTest(WithKey(testing::NewEd25519Key().private_pem)) {}

  // The log hash of every event up to `position`, from the table's receipts.
  std::string LogHashFromTable(uint64_t position) {
    const std::string rows = QueryValue(
        dsn_, absl::StrCat("SELECT string_agg(global_position || ':' || encode(receipt_hash, "
                           "'hex'), ',' ORDER BY global_position) FROM logbook.event_log "
                           "WHERE global_position <= ",
                           position));
    std::string hash = ZeroHash();
    for (absl::string_view row : absl::StrSplit(rows, ',', absl::SkipEmpty())) {
      const size_t colon = row.find(':');
      uint64_t p = 0;
      EXPECT_TRUE(absl::SimpleAtoi(row.substr(0, colon), &p));
      hash = NextLogHash(hash, p, absl::HexStringToBytes(row.substr(colon + 1)));
    }
    return hash;
  }

  // The receipt hash at `position`, in hex.
  std::string Receipt(uint64_t position) {
    return QueryValue(dsn_, absl::StrCat("SELECT encode(receipt_hash, 'hex') FROM "
                                         "logbook.event_log WHERE global_position = ",
                                         position));
  }

  // As the owner: acct-3's last event (position 15) gets other data, a
  // receipt recomputed for it, and the stream's head moved to match.
  void RewriteEvent15() {
    Tamper(
        "UPDATE logbook.event_log e SET data = '{\"n\":400}', data_digest = sha256('{\"n\":400}'), "
        "receipt_hash = logbook.receipt_hash(e.receipt_previous_hash, e.stream_id, "
        "e.stream_version, e.event_id, e.event_type, e.content_type, e.recorded_at, "
        "e.schema_version, e.correlation_id, e.causation_id, sha256('{\"n\":400}'), "
        "e.metadata_digest, e.tenant, e.written_by) WHERE global_position = 15; "
        "UPDATE logbook.streams s SET head_hash = e.receipt_hash FROM logbook.event_log e "
        "WHERE s.stream_id = 'acct-3' AND e.global_position = 15");
  }


  // As the owner: a new stream `stream` whose first event, of `type` and
  // `data`, sits at position 17 of the gap 16..18 with a well-formed
  // receipt; the gap is recorded as 16 and 18 around it.
  void ForgeIntoGap(const std::string& stream, const std::string& type,
                    const std::string& data) {
    Tamper(absl::StrCat(
        "DELETE FROM logbook.position_gaps WHERE first_position = 16; "
        "INSERT INTO logbook.position_gaps (first_position, last_position) "
        "VALUES (16, 16), (18, 18); "
        "INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id, "
        "event_type, data, metadata, content_type, recorded_at, receipt_previous_hash, "
        "receipt_hash, data_digest, metadata_digest, tenant, written_by) SELECT 17, '", stream,
        "', 0, f.id, '", type, "', '", data, "', '', 'application/json', f.at, f.zero, "
        "logbook.receipt_hash(f.zero, '", stream, "', 0, f.id, '", type, "', 'application/json', "
        "f.at, NULL, NULL, NULL, sha256('", data, "'), sha256(''), 'default', 'mallory'), "
        "sha256('", data, "'), sha256(''), 'default', 'mallory' FROM "
        "(SELECT '33333333-3333-4333-8333-333333333333'::uuid AS id, now() AS at, "
        "decode(repeat('00', 32), 'hex') AS zero) f; "
        "INSERT INTO logbook.streams (stream_id, version, last_position, head_hash, created_at) "
        "SELECT '", stream, "', 0, 17, receipt_hash, recorded_at FROM logbook.event_log "
        "WHERE global_position = 17"));
  }

  // As the owner: Seed()'s acct-K loses its last event (version 4, at
  // 12 + K) and its head moves back to version 3; then `cover_up` runs.
  void RemoveLastEvent(const std::string& stream, const std::string& cover_up) {
    Tamper(absl::StrCat(
        "DELETE FROM logbook.event_log WHERE stream_id = '", stream, "' AND stream_version = 4; "
        "UPDATE logbook.streams s SET version = 3, last_position = e.global_position, "
        "head_hash = e.receipt_hash FROM logbook.event_log e WHERE s.stream_id = '", stream,
        "' AND e.stream_id = s.stream_id AND e.stream_version = 3; ", cover_up));
  }

  // "ok N" or the break, from a store without the signing key.
  std::string UnsignedVerify() {
    StoreOptions unsigned_options = options_;
    unsigned_options.signing_key = nullptr;
    auto unsigned_store = EventStore::Open(unsigned_options);
    if (!unsigned_store.ok()) return unsigned_store.status().ToString();
    return testing::VerifyWith(**unsigned_store, "");
  }

  // A full verification of $all; its report.
  VerifyReport VerifyAll(EventStore& store) {
    auto v = store.StartVerify("");
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return {};
    for (;;) {
      auto done = (*v)->Step(4);
      EXPECT_TRUE(done.ok()) << done.status();
      if (!done.ok() || *done) break;
    }
    return (*v)->report();
  }
};

TEST_F(CheckpointsTest, ACheckpointSignsTheWholeLogAtItsHead) {
  Seed();
  auto first = store_->CreateCheckpoint();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->id, 1u);
  EXPECT_EQ(first->log_position, 15u);
  EXPECT_EQ(first->log_hash, LogHashFromTable(15));
  EXPECT_EQ(first->key_id, options_.signing_key->key_id());
  EXPECT_TRUE(VerifySignature(options_.signing_key->public_key(),
                              CheckpointMessage(15, first->log_hash, first->created_at),
                              first->signature));
  // The head has not moved: the same one.
  auto again = store_->CreateCheckpoint();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, 1u);
  // The next continues from it, and equals the hash of the whole log.
  ASSERT_TRUE(store_->Append("acct-1", ExpectedVersion::Any(), {Event("A", "{}")}).ok());
  ASSERT_TRUE(store_->DeleteStream("acct-2", ExpectedVersion::Any(), false, Writer{}).ok());
  auto second = store_->CreateCheckpoint();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->id, 2u);
  EXPECT_EQ(second->log_position, 17u);
  EXPECT_EQ(second->log_hash, LogHashFromTable(17));
  auto latest = store_->LatestCheckpoint();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->id, 2u);
  EXPECT_EQ(latest->signature, second->signature);

  const VerifyReport report = VerifyAll(*store_);
  EXPECT_FALSE(report.first_broken.has_value());
  EXPECT_EQ(report.events_checked, 17u);
  EXPECT_EQ(report.checkpoints_checked, 2u);
  ASSERT_TRUE(report.latest_checkpoint.has_value());
  EXPECT_EQ(report.latest_checkpoint->id, 2u);
  EXPECT_EQ(Verify(""), "ok 17");
}

// The owner rewrites acct-3's last event (position 15) with a receipt it
// recomputes and moves the stream's head to match: receipts alone cannot
// tell, the signed checkpoint at 15 can, and so can every later one.
TEST_F(CheckpointsTest, AnOwnerRewritingAChainIsCaughtAtTheCheckpointItBreaks) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 15.
  ASSERT_TRUE(store_->Append("acct-1", ExpectedVersion::Any(), {Event("A", "{}")}).ok());
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #2 at 16.
  const std::string original = Receipt(15);
  RewriteEvent15();

  // Without the key, receipts and SQL see a whole chain.
  EXPECT_EQ(UnsignedVerify(), "ok 16");
  EXPECT_EQ(SqlVerifyAll(), "ok 16");
  // With it: the event, against the first checkpoint at or after it.
  EXPECT_EQ(Verify(""), "checkpoint_mismatch acct-3@4 #15");
  const VerifyReport report = VerifyAll(*store_);
  ASSERT_TRUE(report.first_broken.has_value());
  EXPECT_EQ(report.first_broken->detail.substr(0, 51),
            "changed since signed checkpoint #1 at position 15 (");
  EXPECT_TRUE(absl::EndsWith(report.first_broken->detail,
                             absl::StrCat("): its receipt hash ", Receipt(15), " is not the ",
                                          original, " it hashed here")))
      << report.first_broken->detail;
  EXPECT_EQ(report.checkpoints_checked, 0u);
}

// The owner rewrites the event and what the checkpoint recorded of it:
// that record no longer hashes to the signature, so verification does not
// trust it, and names the range the signed log hash covers.
TEST_F(CheckpointsTest, AnOwnerRewritingWhatACheckpointRecordedIsCaughtByItsLogHash) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 15.
  RewriteEvent15();
  Tamper("UPDATE logbook.checkpoint_receipts c SET receipts = overlay(c.receipts PLACING "
         "e.receipt_hash FROM 14 * 40 + 9) FROM logbook.event_log e "
         "WHERE e.global_position = 15");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch @0 #15");
  const VerifyReport report = VerifyAll(*store_);
  ASSERT_TRUE(report.first_broken.has_value());
  EXPECT_EQ(report.first_broken->detail.substr(0, 59),
            "the log up to position 15 does not hash to signed checkpoin");
  EXPECT_NE(report.first_broken->detail.find("an event at a position in (0, 15]"),
            std::string::npos)
      << report.first_broken->detail;
}

// The owner removes acct-2's last event (position 14), moves its head back
// and records the position as a gap: receipts and positions are whole
// again, but the checkpoint hashed an event there.
TEST_F(CheckpointsTest, AnEventRemovedByTheOwnerIsNamedByPosition) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 15.
  const std::string original = Receipt(14);
  RemoveLastEvent("acct-2", "INSERT INTO logbook.position_gaps VALUES (14, 14)");
  EXPECT_EQ(UnsignedVerify(), "ok 14");
  EXPECT_EQ(SqlVerifyAll(), "ok 14");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch @0 #14");
  const VerifyReport report = VerifyAll(*store_);
  ASSERT_TRUE(report.first_broken.has_value());
  EXPECT_TRUE(absl::EndsWith(report.first_broken->detail,
                             absl::StrCat("): it hashed an event here (receipt hash ", original,
                                          "), which is gone")))
      << report.first_broken->detail;
}

// The owner cuts the log's end (acct-3's last event) and moves the log's
// head back: the checkpoint beyond the head names what it hashed there.
TEST_F(CheckpointsTest, ALogCutShortByTheOwnerIsNamed) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 15.
  RemoveLastEvent("acct-3", "UPDATE logbook.log_head SET last_position = 14");
  EXPECT_EQ(UnsignedVerify(), "ok 14");
  EXPECT_EQ(SqlVerifyAll(), "ok 14");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch @0 #15");
}

// The owner's forgeries that keep every receipt whole, each put where a
// checkpoint covers it: into positions a rolled-back writer left unused
// (recorded as a gap, which the owner rewrites around it). Receipts, the
// SQL verifier and a store without the key see a whole log; the signed
// checkpoint names the forged event.
TEST_F(CheckpointsTest, AnEventForgedByTheOwnerIsNamed) {
  SeedAroundAGap();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 20.
  ForgeIntoGap("forged-1", "Opened", "{}");
  EXPECT_EQ(UnsignedVerify(), "ok 18");
  EXPECT_EQ(SqlVerifyAll(), "ok 18");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch forged-1@0 #17");
  const VerifyReport report = VerifyAll(*store_);
  ASSERT_TRUE(report.first_broken.has_value());
  EXPECT_NE(report.first_broken->detail.find(
                "changed since signed checkpoint #1 at position 20 ("),
            std::string::npos);
  EXPECT_NE(report.first_broken->detail.find("the event is not among those it hashed"),
            std::string::npos)
      << report.first_broken->detail;
}

// A forged StreamDeleted record that makes a soft delete (hiding acct-1
// from readers) look audited.
TEST_F(CheckpointsTest, AnAuditRecordForgedByTheOwnerIsNamed) {
  SeedAroundAGap();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());
  ForgeIntoGap("$audit", "StreamDeleted",
               "{\"deleted_version\":6,\"stream_id\":\"acct-1\",\"tombstone\":false}");
  Tamper("UPDATE logbook.streams SET state = 'soft_deleted', first_version = 7 "
         "WHERE stream_id = 'acct-1'");
  EXPECT_EQ(store_->GetStream("acct-1")->state, StreamState::kSoftDeleted);
  EXPECT_EQ(UnsignedVerify(), "ok 18");
  EXPECT_EQ(SqlVerifyAll(), "ok 18");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch $audit@0 #17");
}

// A redaction the owner made by hand (acct-2's version 1, at position 5),
// made to look audited by a forged EventRedacted record.
TEST_F(CheckpointsTest, ARedactionForgedByTheOwnerIsNamedAtItsAuditRecord) {
  SeedAroundAGap();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());
  Tamper("UPDATE logbook.event_log SET data = '', metadata = '', redaction_reason = 'gdpr' "
         "WHERE global_position = 5");
  EXPECT_EQ(UnsignedVerify(), "redaction_not_audited acct-2@1 #5");
  const std::string event_id = QueryValue(
      dsn_, "SELECT event_id FROM logbook.event_log WHERE global_position = 5");
  ForgeIntoGap("$audit", "EventRedacted",
               absl::StrCat("{\"event_id\":\"", event_id, "\",\"global_position\":5,"
                            "\"reason\":\"gdpr\",\"stream_id\":\"acct-2\","
                            "\"stream_version\":1}"));
  EXPECT_EQ(UnsignedVerify(), "ok 18");
  EXPECT_EQ(SqlVerifyAll(), "ok 18");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch $audit@0 #17");
}

// Reviving a tombstoned stream contradicts its StreamDeleted record; the
// owner rewrites that record too (and its receipt, and $audit's head), and
// the stream takes appends again. The checkpoint names the record.
TEST_F(CheckpointsTest, ATombstoneRevivedByTheOwnerIsNamed) {
  Seed();
  ASSERT_TRUE(store_->DeleteStream("acct-2", ExpectedVersion::Exact(4), true, Writer{}).ok());  // At 16.
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 16.
  Tamper("UPDATE logbook.streams SET state = 'active', first_version = 0 "
         "WHERE stream_id = 'acct-2'");
  EXPECT_EQ(UnsignedVerify(), "stream_state_changed acct-2@4 #0");
  const std::string data = "{\"deleted_version\":4,\"stream_id\":\"acct-9\",\"tombstone\":true}";
  Tamper(absl::StrCat(
      "UPDATE logbook.event_log e SET data = '", data, "', data_digest = sha256('", data, "'), "
      "receipt_hash = logbook.receipt_hash(e.receipt_previous_hash, e.stream_id, "
      "e.stream_version, e.event_id, e.event_type, e.content_type, e.recorded_at, "
      "e.schema_version, e.correlation_id, e.causation_id, sha256('", data, "'), "
      "e.metadata_digest, e.tenant, e.written_by) WHERE global_position = 16; "
      "UPDATE logbook.streams s SET head_hash = e.receipt_hash FROM logbook.event_log e "
      "WHERE s.stream_id = '$audit' AND e.global_position = 16"));
  EXPECT_EQ(UnsignedVerify(), "ok 16");
  EXPECT_EQ(SqlVerifyAll(), "ok 16");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch $audit@0 #16");
  EXPECT_TRUE(store_->Append("acct-2", ExpectedVersion::Exact(4), {Event("A", "{}")}).ok());
}

// A checkpoint over more events than one chunk of its record holds (10,000):
// the record follows from chunk to chunk, from the previous checkpoint on,
// and a rewrite in the second chunk is named exactly.
TEST_F(CheckpointsTest, ARecordOfManyChunksNamesTheEventInTheLaterOne) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());  // #1 at 15.
  for (int batch = 0; batch < 11; ++batch) {
    std::vector<NewEvent> events;
    for (int i = 0; i < 1000; ++i) events.push_back(Event("Ticked", "{}"));
    ASSERT_TRUE(store_->Append("clock-1", ExpectedVersion::Any(), events).ok());
  }
  auto second = store_->CreateCheckpoint();  // #2 at 11,015.
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->log_position, 11015u);
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(log_position || ':' || after_position || ':' || "
                             "octet_length(receipts) / 40, ',' ORDER BY log_position, "
                             "after_position) FROM logbook.checkpoint_receipts"),
            "15:0:15,11015:15:10000,11015:10015:1000");
  EXPECT_EQ(Verify(""), "ok 11015");
  // The owner rewrites clock-1's last event (version 10,999, in the second
  // chunk) with its receipt and the stream's head.
  Tamper("UPDATE logbook.event_log e SET event_type = 'Tocked', "
         "receipt_hash = logbook.receipt_hash(e.receipt_previous_hash, e.stream_id, "
         "e.stream_version, e.event_id, 'Tocked', e.content_type, e.recorded_at, "
         "e.schema_version, e.correlation_id, e.causation_id, e.data_digest, "
         "e.metadata_digest, e.tenant, e.written_by) WHERE global_position = 11015; "
         "UPDATE logbook.streams s SET head_hash = e.receipt_hash FROM logbook.event_log e "
         "WHERE s.stream_id = 'clock-1' AND e.global_position = 11015");
  EXPECT_EQ(UnsignedVerify(), "ok 11015");
  EXPECT_EQ(Verify(""), "checkpoint_mismatch clock-1@10999 #11015");
}

// A checkpoint row naming the store's key with a signature it did not make
// (the owner, inserting one to cover a rewrite) is named as such.
TEST_F(CheckpointsTest, AForgedSignatureIsNamed) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());
  ASSERT_TRUE(store_->Append("acct-1", ExpectedVersion::Any(), {Event("A", "{}")}).ok());
  Tamper(absl::StrCat("INSERT INTO logbook.checkpoints (log_position, log_hash, created_at, "
                      "key_id, signature) SELECT 16, sha256('x'), now(), key_id, "
                      "substring(sha256('a') || sha256('b') FROM 1 FOR 64) "
                      "FROM logbook.checkpoints WHERE id = 1"));
  EXPECT_EQ(Verify(""), "checkpoint_signature_invalid @0 #16");
}

// The application role can read checkpoints and add them only through
// add_checkpoint, which refuses positions beyond the head or not past the
// newest; nobody changes or deletes one.
TEST_F(CheckpointsTest, CheckpointsAreAppendOnlyAndWrittenOnlyThroughTheFunction) {
  Seed();
  ASSERT_TRUE(store_->CreateCheckpoint().ok());
  const std::string app = AsRole(dsn_, "logbook_app");
  EXPECT_NE(Exec(app, "INSERT INTO logbook.checkpoints (log_position, log_hash, created_at, "
                      "key_id, signature) VALUES (16, sha256('x'), now(), sha256('k'), "
                      "sha256('a') || sha256('b'))")
                .find("permission denied for table checkpoints"),
            std::string::npos);
  EXPECT_EQ(QueryValue(app, "SELECT logbook.add_checkpoint(15, sha256('x'), now(), sha256('k'), "
                            "sha256('a') || sha256('b')) IS NULL"),
            "t");  // Not past the newest.
  EXPECT_EQ(QueryValue(app, "SELECT logbook.add_checkpoint(99, sha256('x'), now(), sha256('k'), "
                            "sha256('a') || sha256('b')) IS NULL"),
            "t");  // Beyond the head.
  EXPECT_NE(Exec(dsn_, "UPDATE logbook.checkpoints SET log_hash = sha256('y')")
                .find("UPDATE on logbook.checkpoints is not allowed"),
            std::string::npos);
  EXPECT_NE(Exec(dsn_, "DELETE FROM logbook.checkpoints")
                .find("DELETE on logbook.checkpoints is not allowed"),
            std::string::npos);
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.checkpoints"), "1");

  // What a checkpoint hashed: only chunks that can belong to one still to
  // be signed, and nothing changes them either.
  ASSERT_TRUE(store_->Append("acct-1", ExpectedVersion::Any(), {Event("A", "{}")}).ok());
  EXPECT_NE(Exec(app, "INSERT INTO logbook.checkpoint_receipts VALUES (16, 15, sha256('x'))")
                .find("permission denied for table checkpoint_receipts"),
            std::string::npos);
  const std::string entry_16 = "'\\x0000000000000010'::bytea || sha256('r')";
  for (const std::string& call : std::vector<std::string>{
           "15, 14, " + entry_16,                   // At the newest checkpoint.
           "17, 15, " + entry_16,                   // Beyond the head.
           "16, 16, " + entry_16,                   // Entries not after p_after_position.
           "16, 15, sha256('r')",                   // Not whole entries.
           "16, 15, ''::bytea",                     // No entries.
       }) {
    EXPECT_EQ(QueryValue(app, "SELECT logbook.add_checkpoint_receipts(" + call + ")"), "f")
        << call;
  }
  EXPECT_EQ(QueryValue(app, "SELECT logbook.add_checkpoint_receipts(16, 15, " + entry_16 + ")"),
            "t");
  EXPECT_NE(Exec(dsn_, "DELETE FROM logbook.checkpoint_receipts")
                .find("DELETE on logbook.checkpoint_receipts is not allowed"),
            std::string::npos);
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.checkpoint_receipts"), "2");
}

TEST(CheckpointsWithoutKey, CreatingOneNeedsASigningKey) {
  StoreOptions options;
  options.dsn = AsRole(testing::CreateMigratedDatabase(), "logbook_app");
  auto store = EventStore::Open(options);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->CreateCheckpoint().status(),
            absl::FailedPreconditionError(
                "checkpoints need a signing key (logbookd --signing-key)"));
  EXPECT_EQ((*store)->LatestCheckpoint().status(),
            absl::NotFoundError("no checkpoint was signed yet"));
}

}  // namespace
}  // namespace logbook::store
