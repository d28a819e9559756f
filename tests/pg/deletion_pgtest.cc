// Deleting streams against a real PostgreSQL: a soft delete hides a stream
// until it is written again, a tombstone is for good; both are audited and
// keep every receipt chain whole.
#include <gtest/gtest.h>

#include "events.h"
#include "logbook/store/event_store.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::Event;
using testing::QueryValue;

// Streams deleted through the store; verification checks the chains after.
class DeletionTest : public testing::StoreTest {};

TEST_F(DeletionTest, SoftDeletedStreamsDisappearAndContinueWhenWrittenAgain) {
  ASSERT_TRUE(store_->Append("cart-1", ExpectedVersion::Any(),
                             {Event("A", "{}"), Event("B", "{}"), Event("C", "{}")})
                  .ok());
  auto wrong = store_->DeleteStream("cart-1", ExpectedVersion::Exact(1), false, Writer{});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(wrong.status().message(),
            "wrong expected version for stream 'cart-1': expected version 1, but the stream is "
            "at version 2");
  auto deleted = store_->DeleteStream("cart-1", ExpectedVersion::Exact(2), false, Writer{});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->deleted_version, 2u);
  EXPECT_EQ(deleted->audit_position, 4u);

  EXPECT_EQ(store_->ReadStream({"cart-1"}).status(),
            absl::NotFoundError("stream 'cart-1' was deleted at version 2"));
  auto info = store_->GetStream("cart-1");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, StreamState::kSoftDeleted);
  EXPECT_EQ(info->first_version, 3u);
  EXPECT_EQ(store_->DeleteStream("cart-1", ExpectedVersion::Any(), false, Writer{}).status(),
            absl::NotFoundError("stream 'cart-1' is already deleted"));
  // It counts as not existing for expected versions.
  auto exists = store_->Append("cart-1", ExpectedVersion::StreamExists(), {Event("D", "{}")});
  EXPECT_EQ(exists.status().message(),
            "wrong expected version for stream 'cart-1': expected an existing stream, but the "
            "stream was deleted at version 2");
  EXPECT_FALSE(exists.status().GetPayload(kActualVersionPayload).has_value());

  auto revived = store_->Append("cart-1", ExpectedVersion::NoStream(), {Event("D", "{}")});
  ASSERT_TRUE(revived.ok()) << revived.status();
  EXPECT_EQ(revived->first_version, 3u);
  auto events = store_->ReadStream({"cart-1"});
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, "D");
  EXPECT_EQ((*events)[0].stream_version, 3u);
  info = store_->GetStream("cart-1");
  EXPECT_EQ(info->state, StreamState::kActive);
  EXPECT_EQ(info->first_version, 3u);
  // $all keeps every event; the deletion is in $audit; the chain is whole.
  auto all = store_->ReadAll({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[3].stream_id, kAuditStream);
  EXPECT_EQ((*all)[3].data, "{\"deleted_version\":2,\"stream_id\":\"cart-1\",\"tombstone\":false}");
  EXPECT_EQ(Verify("cart-1"), "ok 4");
  EXPECT_EQ(Verify(""), "ok 5");
}

TEST_F(DeletionTest, TombstonedStreamsCanNeverBeWrittenAgain) {
  ASSERT_TRUE(store_->Append("cart-2", ExpectedVersion::Any(), {Event("A", "{}")}).ok());
  auto deleted = store_->DeleteStream("cart-2", ExpectedVersion::Any(), true, Writer{});
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->deleted_version, 0u);
  const std::string tombstoned = "stream 'cart-2' is tombstoned (deleted for good at version 0)";
  EXPECT_EQ(store_->ReadStream({"cart-2"}).status(), absl::NotFoundError(tombstoned));
  auto append = store_->Append("cart-2", ExpectedVersion::Any(), {Event("B", "{}")});
  EXPECT_EQ(append.status(),
            absl::FailedPreconditionError(
                "stream 'cart-2' is tombstoned (deleted for good); it cannot be written"));
  EXPECT_EQ(store_->DeleteStream("cart-2", ExpectedVersion::Any(), true, Writer{}).status(),
            absl::FailedPreconditionError("stream 'cart-2' is already tombstoned"));
  EXPECT_EQ(store_->GetStream("cart-2")->state, StreamState::kTombstoned);
  EXPECT_EQ(store_->DeleteStream("nope-2", ExpectedVersion::Any(), true, Writer{}).status(),
            absl::NotFoundError("stream 'nope-2' does not exist"));
  EXPECT_EQ(store_->DeleteStream(kAuditStream, ExpectedVersion::Any(), true, Writer{}).status(),
            absl::InvalidArgumentError("stream_id: system streams cannot be deleted"));
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log"), "2");
  EXPECT_EQ(SqlVerifyAll(), "ok 2");
}

// The owner (past the grants) reviving a tombstone or undoing a soft
// delete in logbook.streams: the row then contradicts the StreamDeleted
// record in $audit, which the receipts (and signed checkpoints) cover, and
// both verifiers name the stream.
TEST_F(DeletionTest, ARowThatContradictsItsDeletionRecordIsNamed) {
  ASSERT_TRUE(store_->Append("cart-3", ExpectedVersion::Any(), {Event("A", "{}")}).ok());
  ASSERT_TRUE(store_->Append("cart-4", ExpectedVersion::Any(),
                             {Event("A", "{}"), Event("B", "{}")}).ok());
  ASSERT_TRUE(store_->DeleteStream("cart-3", ExpectedVersion::Any(), true, Writer{}).ok());
  ASSERT_TRUE(store_->DeleteStream("cart-4", ExpectedVersion::Any(), false, Writer{}).ok());
  ASSERT_TRUE(store_->Append("cart-4", ExpectedVersion::Any(), {Event("C", "{}")}).ok());
  EXPECT_EQ(Verify(""), "ok 6");
  EXPECT_EQ(SqlVerifyAll(), "ok 6");

  Tamper("UPDATE logbook.streams SET state = 'active' WHERE stream_id = 'cart-3'");
  EXPECT_EQ(Verify(""), "stream_state_changed cart-3@0 #0");
  EXPECT_EQ(SqlVerifyAll(), "stream_state_changed cart-3@0 #0");
  EXPECT_EQ(QueryValue(dsn_, "SELECT detail FROM logbook.verify_all()"),
            "its StreamDeleted record at position 4 deleted it for good at version 0, but its "
            "row says active at version 0 reading from version 1");
  Tamper("UPDATE logbook.streams SET state = 'tombstoned' WHERE stream_id = 'cart-3'");
  EXPECT_EQ(Verify(""), "ok 6");

  // Deleted events readable again.
  Tamper("UPDATE logbook.streams SET first_version = 0 WHERE stream_id = 'cart-4'");
  EXPECT_EQ(Verify(""), "stream_state_changed cart-4@1 #0");
  EXPECT_EQ(SqlVerifyAll(), "stream_state_changed cart-4@1 #0");
}

}  // namespace
}  // namespace logbook::store
