// Receipts and verification (the store's and the SQL functions'), schema
// versions in the hash, and redaction, against a real PostgreSQL. Tampering
// is done as a superuser behind the store's back.
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "events.h"
#include "logbook/store/event_store.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::Event;
using testing::Exec;
using testing::QueryValue;

class ReceiptsTest : public testing::StoreTest {
 protected:
  // Every view of verification names `expected` for `stream` and for all.
  void ExpectBroken(const std::string& stream, const std::string& expected) {
    EXPECT_EQ(Verify(stream), expected);
    EXPECT_EQ(SqlVerifyStream(stream), expected);
    EXPECT_EQ(Verify(""), expected);
    EXPECT_EQ(SqlVerifyAll(), expected);
  }
};

TEST_F(ReceiptsTest, EveryEventGetsAReceiptChainedToThePreviousOne) {
  auto first = store_->Append("order-1", ExpectedVersion::NoStream(),
                              {Event("Placed", "{\"total\":5}"), Event("Paid", "{}").Metadata("meta")});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->head_hash.size(), 32u);
  auto info = store_->GetStream("order-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->head_hash, first->head_hash);
  auto hex = [](const std::string& b) { return absl::BytesToHexString(b); };
  EXPECT_EQ(QueryValue(dsn_, "SELECT encode(hash, 'hex') FROM logbook.receipts "
                             "WHERE global_position = 2"),
            hex(first->head_hash));
  EXPECT_EQ(QueryValue(dsn_, "SELECT encode(previous_hash, 'hex') FROM logbook.receipts "
                             "WHERE global_position = 1"),
            std::string(64, '0'));
  EXPECT_EQ(QueryValue(dsn_, "SELECT (SELECT hash FROM logbook.receipts WHERE global_position = 1)"
                             " = (SELECT previous_hash FROM logbook.receipts "
                             "WHERE global_position = 2)"),
            "t");
  // The SQL recomputation of the encoding gives the hash the store computed.
  EXPECT_EQ(QueryValue(dsn_, "SELECT encode(logbook.receipt_hash(r.previous_hash, e.stream_id, "
                             "e.stream_version, e.event_id, e.event_type, e.content_type, "
                             "e.recorded_at, e.schema_version, e.correlation_id, e.causation_id, "
                             "sha256(e.data), sha256(e.metadata), e.tenant, e.written_by), 'hex') FROM logbook.event_log "
                             "e JOIN logbook.receipts r USING (global_position) "
                             "WHERE global_position = 2"),
            hex(first->head_hash));

  auto second = store_->Append("order-1", ExpectedVersion::Exact(1), {Event("Shipped", "{}")});
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->head_hash, first->head_hash);
  // An idempotent retry answers with the stream's current head.
  NewEvent retry = Event("Shipped", "{}");
  retry.event_id = second->event_ids[0];
  auto again = store_->Append("order-1", ExpectedVersion::Exact(1), {retry});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->head_hash, second->head_hash);
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.receipts"), "3");
  EXPECT_EQ(Verify("order-1"), "ok 3");
  EXPECT_EQ(SqlVerifyStream("order-1"), "ok 3");
  EXPECT_EQ(QueryValue(dsn_, "SELECT encode(head_hash, 'hex') FROM logbook.verify_stream('order-1')"),
            hex(second->head_hash));
}

TEST_F(ReceiptsTest, AnUntouchedLogVerifies) {
  Seed();
  EXPECT_EQ(Verify("acct-2"), "ok 5");
  EXPECT_EQ(SqlVerifyStream("acct-2"), "ok 5");
  EXPECT_EQ(Verify(""), "ok 15");
  EXPECT_EQ(SqlVerifyAll(), "ok 15");
  EXPECT_EQ(Verify("nope-1"), "NOT_FOUND: stream 'nope-1' does not exist");
}

TEST_F(ReceiptsTest, ChangedDataIsNamed) {
  Seed();
  Tamper("UPDATE logbook.event_log SET data = '{\"n\":99}' "
         "WHERE stream_id = 'acct-2' AND stream_version = 3");
  ExpectBroken("acct-2", "data_changed acct-2@3 #11");
  EXPECT_EQ(Verify("acct-1"), "ok 5");
}

// Of several broken events the one at the lowest position is named, also
// when its stream's chain is checked in a later pass than a higher one's.
TEST_F(ReceiptsTest, OfSeveralChangedEventsTheLowestIsNamed) {
  Seed();
  Tamper("UPDATE logbook.event_log SET data = '{\"n\":99}' WHERE global_position IN (5, 13)");
  ExpectBroken("acct-2", "data_changed acct-2@1 #5");
  EXPECT_EQ(Verify("acct-1"), "data_changed acct-1@4 #13");
}

TEST_F(ReceiptsTest, ChangedMetadataIsNamed) {
  Seed();
  Tamper("UPDATE logbook.event_log SET metadata = 'forged' WHERE global_position = 4");
  ExpectBroken("acct-1", "metadata_changed acct-1@1 #4");
}

TEST_F(ReceiptsTest, ADeletedEventIsNamed) {
  Seed();
  Tamper("DELETE FROM logbook.event_log WHERE stream_id = 'acct-3' AND stream_version = 2");
  ExpectBroken("acct-3", "event_missing acct-3@2 #9");
}

TEST_F(ReceiptsTest, ADeletedFirstEventIsNamed) {
  Seed();
  Tamper("DELETE FROM logbook.event_log WHERE global_position = 3");
  ExpectBroken("acct-3", "event_missing acct-3@0 #3");
}

TEST_F(ReceiptsTest, TheDeletedLastEventOfTheLogIsNamed) {
  Seed();
  Tamper("DELETE FROM logbook.event_log WHERE global_position = 15");
  ExpectBroken("acct-3", "event_missing acct-3@4 #15");
}

// A deleted event takes its receipt with it: where the log cannot tell
// which of two holes held which event, neither is guessed.
TEST_F(ReceiptsTest, EventsDeletedCloseTogetherAreNamedOnlyAsFarAsTheLogTells) {
  Seed();
  Tamper("DELETE FROM logbook.event_log WHERE global_position IN (2, 4)");
  EXPECT_EQ(Verify("acct-1"), "event_missing acct-1@1 #0");
  EXPECT_EQ(SqlVerifyStream("acct-1"), "event_missing acct-1@1 #0");
  EXPECT_EQ(Verify("acct-2"), "event_missing acct-2@0 #0");
  EXPECT_EQ(SqlVerifyStream("acct-2"), "event_missing acct-2@0 #0");
  EXPECT_EQ(Verify(""), "event_missing @0 #2");
  EXPECT_EQ(SqlVerifyAll(), "event_missing @0 #2");
}

// Every stream's recorded head must be where its chain ends; with several
// broken, the first by stream id is named (also when each stream's chain
// is checked in a pass of its own).
TEST_F(ReceiptsTest, AStreamHeadThatDisagreesWithItsChainIsNamed) {
  Seed();
  Tamper("UPDATE logbook.streams SET head_hash = sha256('x') WHERE stream_id = 'acct-3'");
  EXPECT_EQ(Verify(""), "receipt_changed acct-3@4 #15");
  EXPECT_EQ(Verify("acct-3"), "receipt_changed acct-3@4 #15");
  Tamper("UPDATE logbook.streams SET version = 5 WHERE stream_id = 'acct-2'");
  EXPECT_EQ(Verify(""), "event_missing acct-2@5 #0");
}

// A stream's row set back a version behind logbookd's back: appends to it
// fail with DATA_LOSS naming both versions (not an ABORTED that no retry
// ends), other streams are written, and every verifier names the event past
// the recorded head.
TEST_F(ReceiptsTest, AStreamHeadSetBackIsRefusedAndNamed) {
  Seed();
  Tamper("UPDATE logbook.streams SET version = 3 WHERE stream_id = 'acct-2'");
  const std::string refused =
      "stream 'acct-2' records version 3 but its last event is version 4: its row was changed "
      "outside Logbook, so nothing is appended to it (`logbook verify acct-2` names the break)";
  for (int attempt = 0; attempt < 2; ++attempt) {
    EXPECT_EQ(store_->Append("acct-2", ExpectedVersion::Any(), {Event("Deposited")}).status(),
              absl::DataLossError(refused));
  }
  auto other = store_->Append("acct-1", ExpectedVersion::Exact(4), {Event("Deposited")});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->first_position, 16u);
  EXPECT_EQ(Rows(), "16/3");
  ExpectBroken("acct-2", "event_inserted acct-2@4 #14");
}

TEST_F(ReceiptsTest, AnEventWithoutAReceiptIsNamed) {
  Seed();
  Tamper("ALTER TABLE logbook.event_log ALTER receipt_hash DROP NOT NULL; "
         "UPDATE logbook.event_log SET receipt_hash = NULL WHERE global_position = 5");
  ExpectBroken("acct-2", "event_inserted acct-2@1 #5");
}

// Walking the stream by version, the first broken version is the one moved
// to position 7; walking the log by position (both verify --all and
// verify_all()), version 2 at position 4 comes before version 1 at 7.
TEST_F(ReceiptsTest, SwappedVersionsAreNamedAsAChangedEvent) {
  Seed();
  Tamper("UPDATE logbook.event_log SET stream_version = 99 WHERE global_position = 4; "
         "UPDATE logbook.event_log SET stream_version = 1 WHERE global_position = 7; "
         "UPDATE logbook.event_log SET stream_version = 2 WHERE global_position = 4");
  EXPECT_EQ(Verify("acct-1"), "event_changed acct-1@1 #7");
  EXPECT_EQ(SqlVerifyStream("acct-1"), "event_changed acct-1@1 #7");
  EXPECT_EQ(Verify(""), "versions_out_of_sequence acct-1@2 #4");
  EXPECT_EQ(SqlVerifyAll(), "versions_out_of_sequence acct-1@2 #4");
}

// Positions a writer took and never used (it rolled back) are recorded as a
// gap by the next writer to publish: readers skip them and verification
// accepts them, but not an event deleted beside them or inserted into them.
TEST_F(ReceiptsTest, PositionsOfARolledBackWriterAreARecordedGap) {
  SeedAroundAGap();
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(first_position || '-' || last_position, ',') "
                             "FROM logbook.position_gaps"),
            "16-18");
  ReadAllQuery q;
  q.from_position = 15;
  auto page = store_->ReadAll(q);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[0].global_position, 15u);
  EXPECT_EQ((*page)[1].global_position, 19u);
  EXPECT_EQ((*page)[2].global_position, 20u);
  EXPECT_EQ(Verify(""), "ok 17");
  EXPECT_EQ(SqlVerifyAll(), "ok 17");
  EXPECT_EQ(Verify("acct-1"), "ok 7");
}

TEST_F(ReceiptsTest, AnEventDeletedBesideAGapIsNamed) {
  SeedAroundAGap();
  Tamper("DELETE FROM logbook.event_log WHERE global_position = 19");
  EXPECT_EQ(Verify(""), "event_missing acct-1@5 #19");
  EXPECT_EQ(SqlVerifyAll(), "event_missing acct-1@5 #19");
  EXPECT_EQ(Verify("acct-1"), "event_missing acct-1@5 #19");
  EXPECT_EQ(SqlVerifyStream("acct-1"), "event_missing acct-1@5 #19");
}

TEST_F(ReceiptsTest, AnEventInsertedIntoAGapIsNamed) {
  SeedAroundAGap();
  Tamper("INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id, "
         "event_type, data, metadata, content_type, recorded_at, receipt_previous_hash, "
         "receipt_hash, data_digest, metadata_digest, tenant) SELECT 17, 'forged-1', 0, "
         "'bbbbbbbb-0000-4000-8000-000000000001', event_type, data, metadata, content_type, "
         "recorded_at, receipt_previous_hash, receipt_hash, data_digest, metadata_digest, tenant "
         "FROM logbook.event_log WHERE global_position = 15");
  EXPECT_EQ(Verify(""), "event_inserted forged-1@0 #17");
  EXPECT_EQ(SqlVerifyAll(), "event_inserted forged-1@0 #17");
}

TEST_F(ReceiptsTest, SwappedPayloadsAreNamedAtTheFirstOne) {
  Seed();
  Tamper("UPDATE logbook.event_log e SET data = o.data FROM logbook.event_log o "
         "WHERE (e.global_position, o.global_position) IN ((7, 14), (14, 7))");
  ExpectBroken("acct-1", "data_changed acct-1@2 #7");
  EXPECT_EQ(Verify("acct-2"), "data_changed acct-2@4 #14");
  EXPECT_EQ(SqlVerifyStream("acct-2"), "data_changed acct-2@4 #14");
}

TEST_F(ReceiptsTest, AForgedEventWithAWellFormedReceiptIsNamed) {
  Seed();
  // The forger knows the encoding and links to the real head: only the
  // heads the stream and the log recorded give it away.
  Tamper("INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id, "
         "event_type, data, metadata, content_type, recorded_at, receipt_previous_hash, "
         "receipt_hash, data_digest, metadata_digest, tenant, written_by) SELECT 16, 'acct-1', 5, "
         "f.id, 'Withdrawn', '{}', '', 'application/json', f.at, s.head_hash, "
         "logbook.receipt_hash(s.head_hash, 'acct-1', 5, f.id, 'Withdrawn', 'application/json', "
         "f.at, NULL, NULL, NULL, sha256('{}'), sha256(''), 'default', 'mallory'), sha256('{}'), "
         "sha256(''), 'default', 'mallory' FROM logbook.streams s, "
         "(SELECT '22222222-2222-4222-8222-222222222222'::uuid AS id, now() AS at) f "
         "WHERE s.stream_id = 'acct-1'");
  // Its receipt verifies on its own: the receipts view shows it like any other.
  EXPECT_EQ(QueryValue(dsn_, "SELECT r.hash = logbook.receipt_hash(r.previous_hash, e.stream_id, "
                             "e.stream_version, e.event_id, e.event_type, e.content_type, "
                             "e.recorded_at, e.schema_version, e.correlation_id, e.causation_id, "
                             "r.data_digest, r.metadata_digest, e.tenant, e.written_by) FROM logbook.receipts r "
                             "JOIN logbook.event_log e USING (global_position) "
                             "WHERE global_position = 16"),
            "t");
  ExpectBroken("acct-1", "event_inserted acct-1@5 #16");
}

TEST_F(ReceiptsTest, AChangedReceiptIsNamed) {
  Seed();
  Tamper("UPDATE logbook.receipts SET hash = sha256('x') WHERE global_position = 5");
  ExpectBroken("acct-2", "receipt_changed acct-2@1 #5");
}

TEST_F(ReceiptsTest, AChangedDigestInAReceiptIsTheReceiptsFault) {
  Seed();
  Tamper("UPDATE logbook.receipts SET data_digest = sha256('x') WHERE global_position = 8");
  ExpectBroken("acct-2", "receipt_changed acct-2@2 #8");
}

TEST_F(ReceiptsTest, AnEditedHashedFieldIsNamed) {
  Seed();
  Tamper("UPDATE logbook.event_log SET event_type = 'Withdrawn' WHERE global_position = 3");
  ExpectBroken("acct-3", "event_changed acct-3@0 #3");
}

// Each event stores who wrote it, in its tenant, as the store was told;
// reads return both, and the receipt (v2) covers them.
TEST_F(ReceiptsTest, TheWriterIsStoredReadAndHashed) {
  ASSERT_TRUE(store_->Append("memo-1", ExpectedVersion::NoStream(), {Event("Noted", "{}")},
                             Writer{"ann", "default"})
                  .ok());
  ASSERT_TRUE(store_->Append("memo-1", ExpectedVersion::Exact(0), {Event("Noted", "{}")},
                             Writer{"bob", "default"})
                  .ok());
  auto events = store_->ReadStream({"memo-1"});
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].written_by, "ann");
  EXPECT_EQ((*events)[1].written_by, "bob");
  EXPECT_EQ((*events)[1].tenant, "default");
  auto all = store_->ReadAll({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].written_by, "ann");
  // The SQL encoding with the writer gives the hash the store computed.
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log e WHERE e.receipt_hash = "
                             "logbook.receipt_hash(e.receipt_previous_hash, e.stream_id, "
                             "e.stream_version, e.event_id, e.event_type, e.content_type, "
                             "e.recorded_at, e.schema_version, e.correlation_id, e.causation_id, "
                             "e.data_digest, e.metadata_digest, e.tenant, e.written_by)"),
            "2");
  EXPECT_EQ(Verify("memo-1"), "ok 2");
  // A writer is 1..256 bytes of text; a refused append stores nothing.
  EXPECT_EQ(store_->Append("memo-1", ExpectedVersion::Any(), {Event("Noted", "{}")},
                           Writer{"", "default"})
                .status(),
            absl::InvalidArgumentError("writer.principal: must not be empty"));
  EXPECT_EQ(store_->Append("memo-1", ExpectedVersion::Any(), {Event("Noted", "{}")},
                           Writer{std::string(257, 'p'), "default"})
                .status(),
            absl::InvalidArgumentError("writer.principal: 257 bytes exceed the limit of 256"));
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log"), "2");
}

// Rewriting who wrote an event, or its tenant, behind the service's back is
// named at that event.
TEST_F(ReceiptsTest, AnEditedWriterIsNamedAtItsEvent) {
  Seed();
  Tamper("UPDATE logbook.event_log SET written_by = 'mallory' WHERE global_position = 7");
  ExpectBroken("acct-1", "event_changed acct-1@2 #7");
}

// Row-level security hides an event moved to another tenant from its own,
// whose verification finds it gone.
TEST_F(ReceiptsTest, AnEditedTenantIsNamedAtItsEvent) {
  Seed();
  Tamper("UPDATE logbook.event_log SET tenant = 'other' WHERE global_position = 12");
  ExpectBroken("acct-3", "event_missing acct-3@3 #12");
}

// Dropping the writer makes the event claim a v1 receipt, which its hash is
// not.
TEST_F(ReceiptsTest, AnErasedWriterIsNamedAtItsEvent) {
  Seed();
  Tamper("UPDATE logbook.event_log SET written_by = NULL WHERE global_position = 8");
  ExpectBroken("acct-2", "event_changed acct-2@2 #8");
}

TEST_F(ReceiptsTest, ARedactionWithoutAnAuditRecordIsNamed) {
  Seed();
  Tamper("UPDATE logbook.event_log SET data = '', metadata = '', redaction_reason = 'oops' "
         "WHERE global_position = 10");
  ExpectBroken("acct-1", "redaction_not_audited acct-1@3 #10");
}

TEST_F(ReceiptsTest, ConcurrentGroupCommitsKeepEveryChainWhole) {
  constexpr int kThreads = 8, kAppends = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        auto r = store_->Append(absl::StrCat("load-", (t + i) % 4), ExpectedVersion::Any(),
                                {Event("E", absl::StrCat("{\"t\":", t, ",\"i\":", i, "}")),
                                 Event("F", "{}")});
        ASSERT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Verify(""), "ok 640");
  EXPECT_EQ(SqlVerifyAll(), "ok 640");
  for (int s = 0; s < 4; ++s) EXPECT_EQ(Verify(absl::StrCat("load-", s)), "ok 160");
}

// Each server guesses stream heads from what it wrote last; with two
// servers on one stream every guess is stale and must be caught.
TEST_F(ReceiptsTest, TwoServersWritingOneStreamKeepOneChain) {
  StoreOptions options;
  options.dsn = dsn_;
  auto other = EventStore::Open(options);
  ASSERT_TRUE(other.ok()) << other.status();
  EventStore* servers[] = {store_.get(), other->get()};
  for (uint64_t v = 0; v < 20; ++v) {
    EventStore& s = *servers[v % 2];
    auto r = s.Append("shared-1", v == 0 ? ExpectedVersion::NoStream() : ExpectedVersion::Exact(v - 1),
                      {Event("E", absl::StrCat("{\"v\":", v, "}"))});
    ASSERT_TRUE(r.ok()) << v << ": " << r.status();
    EXPECT_EQ(r->last_version, v);
    EXPECT_EQ(r->last_position, v + 1);
    // The server that wrote last time now holds a stale head.
    auto stale = servers[(v + 1) % 2]->Append("shared-1", ExpectedVersion::Exact(v == 0 ? 5 : v - 1),
                                              {Event("E", "{}")});
    EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << v;
  }
  // A retry through the other server is recognized.
  NewEvent again = Event("E", "{\"v\":19}");
  again.event_id = store_->ReadStream({"shared-1", 19})->front().event_id;
  auto retry = servers[0]->Append("shared-1", ExpectedVersion::Exact(18), {again});
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->last_position, 20u);
  EXPECT_EQ(Verify("shared-1"), "ok 20");
  EXPECT_EQ(SqlVerifyAll(), "ok 20");
}

TEST_F(ReceiptsTest, SchemaVersionsAreStoredAndHashed) {
  NewEvent v7 = Event("Placed", "{}");
  v7.schema_version = 7;
  ASSERT_TRUE(store_->Append("order-9", ExpectedVersion::Any(), {v7, Event("Paid", "{}")}).ok());
  auto events = store_->ReadStream({"order-9"});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].schema_version, std::optional<uint32_t>(7));
  EXPECT_EQ((*events)[1].schema_version, std::nullopt);
  EXPECT_EQ(Verify("order-9"), "ok 2");
  Tamper("UPDATE logbook.event_log SET schema_version = 8 WHERE global_position = 1");
  EXPECT_EQ(Verify("order-9"), "event_changed order-9@0 #1");
}

TEST_F(ReceiptsTest, RedactionEmptiesThePayloadKeepsTheChainAndIsAudited) {
  Seed();
  auto redacted =
      store_->RedactEvent("acct-2", 1, "GDPR erasure, ticket 4711", Writer{"dpo", "default"});
  ASSERT_TRUE(redacted.ok()) << redacted.status();
  EXPECT_EQ(redacted->global_position, 5u);
  EXPECT_EQ(redacted->audit_position, 16u);
  auto events = store_->ReadStream({"acct-2", 1, Direction::kForward, 1});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].data, "");
  EXPECT_EQ((*events)[0].metadata, "");
  EXPECT_EQ((*events)[0].redaction_reason, std::optional<std::string>("GDPR erasure, ticket 4711"));
  auto audit = store_->ReadStream({kAuditStream});
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].type, "EventRedacted");
  EXPECT_EQ((*audit)[0].written_by, "dpo");  // Who redacted.
  EXPECT_EQ((*audit)[0].data,
            absl::StrCat("{\"event_id\":\"", (*events)[0].event_id,
                         "\",\"global_position\":5,\"reason\":\"GDPR erasure, ticket 4711\","
                         "\"stream_id\":\"acct-2\",\"stream_version\":1}"));
  EXPECT_EQ(Verify(""), "ok 16");
  EXPECT_EQ(SqlVerifyAll(), "ok 16");
  EXPECT_EQ(Verify("acct-2"), "ok 5");

  // Refusals change nothing.
  const std::string before = QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log");
  EXPECT_EQ(store_->RedactEvent("acct-2", 1, "again", Writer{}).status(),
            absl::FailedPreconditionError("event acct-2@1 is already redacted"));
  EXPECT_EQ(store_->RedactEvent("acct-2", 9, "x", Writer{}).status(),
            absl::NotFoundError("stream 'acct-2' has no event at version 9"));
  EXPECT_EQ(store_->RedactEvent(kAuditStream, 0, "x", Writer{}).status(),
            absl::FailedPreconditionError(
                "stream_id: events of system stream '$audit' cannot be redacted"));
  EXPECT_EQ(store_->RedactEvent("acct-2", 2, "", Writer{}).status(),
            absl::InvalidArgumentError("reason: must not be empty"));
  EXPECT_EQ(store_->RedactEvent("acct-2", 2, std::string(1025, 'r'), Writer{}).status(),
            absl::InvalidArgumentError("reason: 1025 bytes exceed the limit of 1024"));
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log"), before);
  // Putting data back behind the service's back is tampering.
  Tamper("UPDATE logbook.event_log SET data = '{\"n\":1}' WHERE global_position = 5");
  EXPECT_EQ(Verify("acct-2"), "data_changed acct-2@1 #5");
}

}  // namespace
}  // namespace logbook::store
