// Snapshots against a real PostgreSQL: saved at a version and schema, the
// newest few kept, loaded by version and schema, useless after a delete,
// refused when they no longer match what they were computed from.
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "events.h"
#include "keys.h"
#include "logbook/store/checkpoints.h"
#include "logbook/store/event_store.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::Event;
using testing::QueryValue;

// Snapshots of streams appended through the store.
class SnapshotsTest : public testing::StoreTest {};

TEST_F(SnapshotsTest, SnapshotsKeepTheNewestThreeAndCountEventsSinceTheNewest) {
  std::vector<NewEvent> six;
  for (int i = 0; i < 6; ++i) six.push_back(Event("E", "{}"));
  auto appended = store_->Append("agg-1", ExpectedVersion::Any(), six);
  ASSERT_TRUE(appended.ok());
  EXPECT_EQ(appended->events_since_snapshot, 6u);

  auto beyond = store_->SaveSnapshot({"agg-1", 6, 1, "s6"});
  EXPECT_EQ(beyond.status(),
            absl::FailedPreconditionError(
                "stream_version: 6 is beyond the head of stream 'agg-1', version 5"));
  EXPECT_EQ(store_->SaveSnapshot({"nope-3", 0, 1, "x"}).status(),
            absl::NotFoundError("stream 'nope-3' does not exist"));
  EXPECT_EQ(store_->SaveSnapshot({"agg-1", 1, 1, std::string((4 << 20) + 1, 'x')}).status(),
            absl::ResourceExhaustedError("state: 4194305 bytes exceed the limit of 4194304"));

  for (uint64_t v : {0, 1, 2, 3}) {
    auto saved = store_->SaveSnapshot({"agg-1", v, 1, absl::StrCat("s", v)});
    ASSERT_TRUE(saved.ok()) << saved.status();
  }
  ASSERT_TRUE(store_->SaveSnapshot({"agg-1", 2, 2, "v2-at-2"}).ok());
  // Kept: the newest three by version: 3 (schema 1), 2 (schema 2), 2 (schema 1).
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(stream_version || ':' || schema_version, ',' "
                             "ORDER BY stream_version, schema_version) FROM logbook.snapshots"),
            "2:1,2:2,3:1");

  auto newest = store_->LoadSnapshot({"agg-1"});
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(newest->stream_version, 3u);
  EXPECT_EQ(newest->state, "s3");
  auto at2 = store_->LoadSnapshot({"agg-1", 2, 1});
  ASSERT_TRUE(at2.ok());
  EXPECT_EQ(at2->state, "s2");
  auto schema2 = store_->LoadSnapshot({"agg-1", std::nullopt, 2});
  ASSERT_TRUE(schema2.ok());
  EXPECT_EQ(schema2->state, "v2-at-2");
  EXPECT_EQ(store_->LoadSnapshot({"agg-1", 1, std::nullopt}).status(),
            absl::NotFoundError("stream 'agg-1' has no snapshot at or below version 1"));
  EXPECT_EQ(store_->LoadSnapshot({"agg-1", std::nullopt, 3}).status(),
            absl::NotFoundError("stream 'agg-1' has no snapshot of schema version 3"));

  auto next = store_->Append("agg-1", ExpectedVersion::Exact(5), {Event("E", "{}")});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->events_since_snapshot, 3u);  // Versions 4, 5, 6 after the snapshot at 3.

  // A soft delete makes the old snapshots useless: they include deleted events.
  ASSERT_TRUE(store_->DeleteStream("agg-1", ExpectedVersion::Any(), false, Writer{}).ok());
  auto revived = store_->Append("agg-1", ExpectedVersion::NoStream(), {Event("E", "{}")});
  ASSERT_TRUE(revived.ok());
  EXPECT_EQ(revived->first_version, 7u);
  EXPECT_EQ(revived->events_since_snapshot, 1u);  // Only version 7 is readable.
  EXPECT_EQ(store_->LoadSnapshot({"agg-1"}).status(),
            absl::NotFoundError("stream 'agg-1' has no snapshot"));
}

// Schema versions are unsigned 32-bit numbers: the whole range is stored and
// selected, and a large one that matches nothing is NOT_FOUND.
TEST_F(SnapshotsTest, SchemaVersionsTakeTheWholeUnsignedRange) {
  ASSERT_TRUE(store_->Append("big-1", ExpectedVersion::Any(), {Event("E"), Event("E")}).ok());
  for (uint32_t schema : {2147483648u, 4294967295u}) {
    auto saved = store_->SaveSnapshot({"big-1", schema == 4294967295u ? 1u : 0u, schema,
                                       absl::StrCat("at ", schema)});
    ASSERT_TRUE(saved.ok()) << saved.status();
  }
  auto top = store_->LoadSnapshot({"big-1", std::nullopt, 4294967295u});
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->schema_version, 4294967295u);
  EXPECT_EQ(top->stream_version, 1u);
  EXPECT_EQ(top->state, "at 4294967295");
  auto half = store_->LoadSnapshot({"big-1", std::nullopt, 2147483648u});
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->state, "at 2147483648");
  EXPECT_EQ(store_->LoadSnapshot({"big-1", std::nullopt, 3000000000u}).status(),
            absl::NotFoundError("stream 'big-1' has no snapshot of schema version 3000000000"));
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(schema_version::text, ',' ORDER BY 1) "
                             "FROM logbook.snapshots"),
            "2147483648,4294967295");
}

// A snapshot carries the stream's receipt at its version and its state's
// digest: the owner editing its state, or the history it was computed
// from, gets DATA_LOSS instead of a snapshot.
TEST_F(SnapshotsTest, ASnapshotThatNoLongerMatchesIsRefused) {
  ASSERT_TRUE(store_->Append("cart-1", ExpectedVersion::Any(),
                             {Event("A", "{}"), Event("B", "{}")}).ok());
  ASSERT_TRUE(store_->SaveSnapshot({"cart-1", 1, 1, "two items"}).ok());
  EXPECT_EQ(QueryValue(dsn_, "SELECT n.head_hash = e.receipt_hash AND n.state_digest = "
                             "sha256(n.state) AND n.signature IS NULL FROM logbook.snapshots n "
                             "JOIN logbook.event_log e USING (stream_id, stream_version)"),
            "t");
  ASSERT_TRUE(store_->LoadSnapshot({"cart-1"}).ok());

  Tamper("UPDATE logbook.snapshots SET state = 'nine items'");
  EXPECT_EQ(store_->LoadSnapshot({"cart-1"}).status(),
            absl::DataLossError("the snapshot of stream 'cart-1' at version 1 (schema 1): its "
                                "state does not match its digest"));
  Tamper("UPDATE logbook.snapshots SET state_digest = sha256(state)");
  Tamper("UPDATE logbook.event_log SET receipt_hash = sha256('x') WHERE stream_version = 1");
  EXPECT_EQ(store_->LoadSnapshot({"cart-1"}).status(),
            absl::DataLossError("the snapshot of stream 'cart-1' at version 1 (schema 1): the "
                                "stream's receipt at that version is no longer the one it was "
                                "computed from"));
  // The application role cannot save one of another history.
  EXPECT_EQ(QueryValue(testing::AsRole(dsn_, "logbook_app"),
                       "SELECT outcome FROM logbook.save_snapshot('cart-1', 0, 1, 'x', 3, "
                       "sha256('y'), NULL, NULL)"),
            "head_mismatch");
}

// With a signing key, snapshots are signed over what they were computed
// from; one forged by the owner, even with a matching digest and head, is
// refused, and an unsigned one is never served.
class SignedSnapshotsTest : public testing::StoreTest {
 protected:
  static StoreOptions WithKey() {
    StoreOptions options;
    options.signing_key = *SigningKey::FromPem(testing::NewEd25519Key().private_pem);
    return options;
  }
  SignedSnapshotsTest() : StoreTest(WithKey()) {}
};

TEST_F(SignedSnapshotsTest, OnlySnapshotsSignedByTheKeyAreServed) {
  ASSERT_TRUE(store_->Append("cart-1", ExpectedVersion::Any(),
                             {Event("A", "{}"), Event("B", "{}"), Event("C", "{}")}).ok());
  ASSERT_TRUE(store_->SaveSnapshot({"cart-1", 1, 1, "two items"}).ok());
  auto loaded = store_->LoadSnapshot({"cart-1"});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->state, "two items");
  EXPECT_EQ(QueryValue(dsn_, "SELECT encode(key_id, 'hex') FROM logbook.snapshots"),
            absl::BytesToHexString(options_.signing_key->key_id()));

  // An unsigned snapshot at a later version, inserted by the owner: skipped.
  Tamper("INSERT INTO logbook.snapshots (stream_id, stream_version, schema_version, state, "
         "head_hash, state_digest) SELECT 'cart-1', 2, 1, 'forged', receipt_hash, "
         "sha256('forged') FROM logbook.event_log WHERE stream_version = 2");
  loaded = store_->LoadSnapshot({"cart-1"});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->stream_version, 1u);
  // The signed one's state rewritten with its digest: the signature fails.
  Tamper("UPDATE logbook.snapshots SET state = 'nine items', state_digest = sha256('nine items') "
         "WHERE stream_version = 1");
  EXPECT_EQ(store_->LoadSnapshot({"cart-1"}).status(),
            absl::DataLossError("the snapshot of stream 'cart-1' at version 1 (schema 1): its "
                                "signature does not verify with this server's key"));
}

}  // namespace
}  // namespace logbook::store
