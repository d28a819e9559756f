// Signed checkpoints against a real PostgreSQL: the store signs the log's
// head with its Ed25519 key, continues from its own newest checkpoint, and
// verifying $all checks the log against every checkpoint it signed, which
// catches what receipts alone cannot: the owner rewriting an event together
// with its receipt and the stream's head.
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
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
  ASSERT_TRUE(store_->DeleteStream("acct-2", ExpectedVersion::Any(), false).ok());
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
  Tamper(
      "UPDATE logbook.event_log e SET data = '{\"n\":400}', data_digest = sha256('{\"n\":400}'), "
      "receipt_hash = logbook.receipt_hash(e.receipt_previous_hash, e.stream_id, "
      "e.stream_version, e.event_id, e.event_type, e.content_type, e.recorded_at, "
      "e.schema_version, e.correlation_id, e.causation_id, sha256('{\"n\":400}'), "
      "e.metadata_digest) WHERE global_position = 15; "
      "UPDATE logbook.streams s SET head_hash = e.receipt_hash FROM logbook.event_log e "
      "WHERE s.stream_id = 'acct-3' AND e.global_position = 15");

  // Without the key, receipts and SQL see a whole chain.
  StoreOptions unsigned_options;
  unsigned_options.dsn = options_.dsn;
  auto unsigned_store = EventStore::Open(unsigned_options);
  ASSERT_TRUE(unsigned_store.ok());
  EXPECT_EQ(testing::VerifyWith(**unsigned_store, ""), "ok 16");
  EXPECT_EQ(SqlVerifyAll(), "ok 16");
  // With it: the first checkpoint at or after position 15.
  EXPECT_EQ(Verify(""), "checkpoint_mismatch @0 #15");
  const VerifyReport report = VerifyAll(*store_);
  ASSERT_TRUE(report.first_broken.has_value());
  EXPECT_EQ(report.first_broken->detail.substr(0, 59),
            "the log up to position 15 does not hash to signed checkpoin");
  EXPECT_NE(report.first_broken->detail.find("an event at a position in (0, 15]"),
            std::string::npos)
      << report.first_broken->detail;
  EXPECT_EQ(report.checkpoints_checked, 0u);
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
