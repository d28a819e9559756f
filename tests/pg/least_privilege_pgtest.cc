// What a session holding logbookd's credentials (the application role,
// logbook_app) can do behind logbookd's back: read, and append through the
// functions that check what they write. Each forgery of issue 17 is tried
// here as that role and must be refused by PostgreSQL, changing nothing.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "events.h"
#include "logbook/store/event_store.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::AsRole;
using testing::Event;
using testing::Exec;
using testing::QueryValue;

// acct-1..3 at version 4 (Seed), shop-1 tombstoned at version 0.
class LeastPrivilegeTest : public testing::StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    Seed();
    ASSERT_TRUE(store_->Append("shop-1", ExpectedVersion::NoStream(), {Event("Opened", "{}")}).ok());
    ASSERT_TRUE(store_->DeleteStream("shop-1", ExpectedVersion::Any(), true, Writer{}).ok());
    app_ = AsRole(dsn_, "logbook_app");
    before_ = State();
  }

  // Everything a forgery could touch, as the superuser reads it, but the
  // positions sequence: a refused append has taken positions, as any writer
  // that rolls back, which the next append records as a gap.
  std::string State() {
    return QueryValue(dsn_,
                      "SELECT (SELECT string_agg(global_position || ':' || encode(receipt_hash, "
                      "'hex') || ':' || coalesce(redaction_reason, ''), ',' ORDER BY "
                      "global_position) FROM logbook.event_log) || '|' || (SELECT "
                      "string_agg(stream_id || ':' || version || ':' || state || ':' || "
                      "first_version, ',' ORDER BY stream_id) FROM logbook.streams) || '|' || "
                      "(SELECT count(*) FROM logbook.snapshots) || '|' || (SELECT last_position "
                      "FROM logbook.log_head)");
  }

  // An append_loaded call as the application role of one event of `stream`
  // at `version`, with the given previous hash and receipt (SQL
  // expressions), data '{}' and its digests, and the receipt as the new
  // head hash unless `head_hash` says otherwise.
  std::string AppendLoaded(const std::string& stream, int version, const std::string& previous,
                           const std::string& receipt, std::string head_hash = "") {
    if (head_hash.empty()) head_hash = receipt;
    return Exec(app_, absl::StrCat(
                          "SELECT * FROM logbook.append_loaded(ARRAY[ROW('", stream, "', ",
                          version, ", gen_random_uuid(), 'Forged', 'application/json', NULL, "
                          "NULL, NULL, '\\x7b7d'::bytea, ''::bytea, ", previous, ", ", receipt,
                          ", sha256('\\x7b7d'::bytea), sha256(''::bytea), 'default', 'mallory', NULL)::logbook.new_event], "
                          "now(), ARRAY['", stream, "'], ARRAY[", version,
                          "::bigint], ARRAY[1::bigint], ", head_hash, ")"));
  }

  std::string app_, before_;
};

constexpr char kPermissionDenied[] = "permission denied for ";

TEST_F(LeastPrivilegeTest, NoTableOrSequenceCanBeWrittenDirectly) {
  const std::pair<const char*, const char*> forgeries[] = {
      // A tombstone revived; a head moved back or forward.
      {"UPDATE logbook.streams SET state = 'active' WHERE stream_id = 'shop-1'", "table streams"},
      {"UPDATE logbook.streams SET version = 3 WHERE stream_id = 'acct-1'", "table streams"},
      {"INSERT INTO logbook.streams (stream_id, version, last_position) VALUES ('x-1', 0, 99)",
       "table streams"},
      // A forged event, receipt or not; the log's head and positions.
      {"INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id, "
       "event_type, data, metadata, content_type, recorded_at) VALUES (99, 'acct-1', 5, "
       "gen_random_uuid(), 'Forged', '{}', '', 'application/json', now())",
       "table event_log"},
      {"UPDATE logbook.log_head SET last_position = 99", "table log_head"},
      {"INSERT INTO logbook.position_gaps VALUES (20, 30)", "table position_gaps"},
      {"SELECT nextval('logbook.positions')", "sequence positions"},
      {"SELECT setval('logbook.recorded_at_micros', 1)", "sequence recorded_at_micros"},
      {"SELECT nextval('logbook.append_tickets')", "sequence append_tickets"},
      // A forged snapshot.
      {"INSERT INTO logbook.snapshots (stream_id, stream_version, schema_version, state) "
       "VALUES ('shop-1', 0, 1, '\\x00')",
       "table snapshots"},
      {"DELETE FROM logbook.snapshots", "table snapshots"},
      // The tools: receipts, redaction, tickets and the writers behind the checks.
      {"SELECT logbook.receipt_hash(NULL, 'acct-1', 5, gen_random_uuid(), 'T', 'c', now(), "
       "NULL, NULL, NULL, sha256(''), sha256(''), 'default', 'mallory')",
       "function receipt_hash"},
      {"SELECT * FROM logbook.redact('acct-1', 0, 'hidden', 'mallory')", "function redact"},
      {"SELECT * FROM logbook.take_ticket(1, now())", "function take_ticket"},
      {"SELECT logbook.publish(1, 1, 1, now())", "function publish"},
      {"SELECT logbook.append_audit('EventRedacted', '{}', 'mallory')", "function append_audit"},
      {"SELECT logbook.lock_streams(ARRAY['acct-1'])", "function lock_streams"},
  };
  for (const auto& [sql, object] : forgeries) {
    EXPECT_NE(Exec(app_, sql).find(absl::StrCat(kPermissionDenied, object)), std::string::npos)
        << sql << ": " << Exec(app_, sql);
  }
  EXPECT_EQ(State(), before_);
  EXPECT_EQ(Verify(""), "ok 17");
}

TEST_F(LeastPrivilegeTest, AppendFunctionsRefuseWhatLogbookdWouldNeverSend) {
  const std::string head =
      "(SELECT head_hash FROM logbook.streams WHERE stream_id = 'acct-1')";
  const std::string refused = "refused to append: ";
  // Versions that do not follow the head, either way.
  EXPECT_NE(AppendLoaded("acct-1", 7, head, "sha256('x')")
                .find(refused + "the new heads take 3 events, the group has 1"),
            std::string::npos);
  EXPECT_NE(AppendLoaded("acct-1", 3, head, "sha256('x')")
                .find(refused + "stream acct-1 is at version 4, beyond its new head 3"),
            std::string::npos);
  // Tombstones are final; $audit is written only by the functions that audit.
  EXPECT_NE(AppendLoaded("shop-1", 1, "sha256('x')", "sha256('x')")
                .find(refused + "stream shop-1 is tombstoned"),
            std::string::npos);
  EXPECT_NE(AppendLoaded("$audit", 2, "sha256('x')", "sha256('x')")
                .find(refused + "$audit is a system stream"),
            std::string::npos);
  // An event slipped in beside an honest head: shop-1@1 has no head.
  EXPECT_NE(Exec(app_, "SELECT * FROM logbook.append_loaded(ARRAY["
                       "ROW('shop-1', 1, gen_random_uuid(), 'Forged', 'application/json', NULL, "
                       "NULL, NULL, '\\x7b7d'::bytea, ''::bytea, sha256('x'), sha256('y'), "
                       "sha256('\\x7b7d'::bytea), sha256(''::bytea), 'default', 'mallory', NULL)::logbook.new_event, "
                       "ROW('acct-1', 6, gen_random_uuid(), 'Forged', 'application/json', NULL, "
                       "NULL, NULL, '\\x7b7d'::bytea, ''::bytea, sha256('x'), sha256('z'), "
                       "sha256('\\x7b7d'::bytea), sha256(''::bytea), 'default', 'mallory', NULL)::logbook.new_event], now(), "
                       "ARRAY['acct-1'], ARRAY[6::bigint], ARRAY[2::bigint], sha256('z'))")
                .find(refused + "1 of the group's 2 events are not new versions of their streams"),
            std::string::npos);
  // A head that is not its stream's last event.
  EXPECT_NE(AppendLoaded("acct-1", 5, head, "sha256('x')", "sha256('q')")
                .find(refused + "1 of the group's 1 events are not new versions of their streams, or "
                            "not the new heads they are said to be"),
            std::string::npos);
  // Deletions check the version logbookd found and never touch $audit.
  EXPECT_NE(Exec(app_, "SELECT logbook.delete_stream('acct-1', 3, true, 'mallory')")
                .find("refused to delete stream acct-1: it is active at version 4"),
            std::string::npos);
  EXPECT_NE(Exec(app_, "SELECT logbook.delete_stream('shop-1', 0, false, 'mallory')")
                .find("refused to delete stream shop-1: it is tombstoned at version 0"),
            std::string::npos);
  EXPECT_NE(Exec(app_, "SELECT logbook.delete_stream('$audit', 0, true, 'mallory')")
                .find("refused to delete stream $audit"),
            std::string::npos);
  // Snapshots only of live streams at versions they have.
  EXPECT_EQ(QueryValue(app_, "SELECT outcome FROM logbook.save_snapshot('shop-1', 0, 1, "
                             "'\\x00', 3, NULL, NULL, NULL)"),
            "not_active");
  EXPECT_EQ(QueryValue(app_, "SELECT outcome FROM logbook.save_snapshot('acct-1', 5, 1, "
                             "'\\x00', 3, NULL, NULL, NULL)"),
            "beyond_head");
  EXPECT_EQ(State(), before_);
  EXPECT_EQ(Verify(""), "ok 17");
  EXPECT_EQ(SqlVerifyAll(), "ok 17");
}

// PostgreSQL does not hash receipts again (docs/operations.md "Roles"):
// an event appended with a receipt that is not the hash of its fields gets
// in, as any append of the application role does, and verification names
// it, at that event, in C++ and in SQL.
TEST_F(LeastPrivilegeTest, AWrongReceiptIsNamedByVerification) {
  EXPECT_EQ(AppendLoaded("acct-1", 5,
                         "(SELECT head_hash FROM logbook.streams WHERE stream_id = 'acct-1')",
                         "sha256('x')"),
            "");
  EXPECT_EQ(Verify("acct-1"), "event_changed acct-1@5 #18");
  EXPECT_EQ(SqlVerifyAll(), "event_changed acct-1@5 #18");
}

// What logbookd does as the application role still works: appends (both
// write routes), deletions, snapshots, verification in SQL.
TEST_F(LeastPrivilegeTest, LogbookdsOwnWorkNeedsNothingMore) {
  auto appended = store_->Append("acct-1", ExpectedVersion::Exact(4), {Event("A", "{}")});
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_EQ(appended->last_version, 5u);
  EXPECT_EQ(store_->Append("shop-1", ExpectedVersion::Any(), {Event("A", "{}")}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto saved = store_->SaveSnapshot({"acct-1", 5, 4294967295u, "state"});
  ASSERT_TRUE(saved.ok()) << saved.status();
  auto deleted = store_->DeleteStream("acct-2", ExpectedVersion::Exact(4), false, Writer{});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->audit_position, 19u);
  auto redacted = store_->RedactEvent("acct-3", 0, "GDPR request 9", Writer{});
  ASSERT_TRUE(redacted.ok()) << redacted.status();
  EXPECT_EQ(redacted->audit_position, 20u);
  EXPECT_EQ(QueryValue(app_, "SELECT ok FROM logbook.verify_stream('acct-1')"), "t");
  EXPECT_EQ(Verify(""), "ok 20");
  EXPECT_EQ(SqlVerifyAll(), "ok 20");
}

}  // namespace
}  // namespace logbook::store
