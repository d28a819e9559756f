#include "store_fixture.h"

#include "absl/strings/str_cat.h"
#include "events.h"
#include "test_env.h"

namespace logbook::testing {
namespace {

std::string ReasonName(store::BreakReason reason) {
  using store::BreakReason;
  switch (reason) {
    case BreakReason::kDataChanged: return "data_changed";
    case BreakReason::kMetadataChanged: return "metadata_changed";
    case BreakReason::kEventMissing: return "event_missing";
    case BreakReason::kEventInserted: return "event_inserted";
    case BreakReason::kReceiptChanged: return "receipt_changed";
    case BreakReason::kVersionsOutOfSequence: return "versions_out_of_sequence";
    case BreakReason::kEventChanged: return "event_changed";
    case BreakReason::kRedactionNotAudited: return "redaction_not_audited";
    case BreakReason::kCheckpointMismatch: return "checkpoint_mismatch";
    case BreakReason::kCheckpointSignatureInvalid: return "checkpoint_signature_invalid";
    case BreakReason::kStreamStateChanged: return "stream_state_changed";
  }
  return "?";
}

}  // namespace

StoreTest::StoreTest(store::StoreOptions options) : options_(std::move(options)) {}

void StoreTest::SetUp() {
  dsn_ = CreateMigratedDatabase();
  // As logbookd runs: the application role, and the redactor for admin calls.
  options_.dsn = AsRole(dsn_, "logbook_app");
  options_.admin_dsn = AsRole(dsn_, "logbook_redactor");
  auto store = store::EventStore::Open(options_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

std::string StoreTest::Rows() {
  return QueryValue(dsn_, "SELECT (SELECT count(*) FROM logbook.event_log) || '/' || "
                          "(SELECT count(*) FROM logbook.streams)");
}

void StoreTest::Tamper(const std::string& sql) {
  ASSERT_EQ(Exec(dsn_, "SET session_replication_role = replica; " + sql), "");
}

void StoreTest::Seed() {
  for (int v = 0; v < 5; ++v) {
    for (int k = 1; k <= 3; ++k) {
      auto r = store_->Append(
          absl::StrCat("acct-", k), store::ExpectedVersion::Any(),
          {Event("Deposited", absl::StrCat("{\"n\":", v, "}")).Metadata(absl::StrCat("m", v))});
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->last_position, static_cast<uint64_t>(3 * v + k));
    }
  }
}

void StoreTest::SeedAroundAGap() {
  Seed();
  ASSERT_EQ(Exec(dsn_, "BEGIN; SELECT logbook.take_ticket(3, NULL); ROLLBACK;"), "");
  auto r = store_->Append("acct-1", store::ExpectedVersion::Exact(4),
                          {Event("Deposited", "{\"n\":5}"), Event("Deposited", "{\"n\":6}")});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->first_position, 19u);
  ASSERT_EQ(r->last_position, 20u);
}

std::string StoreTest::Verify(const std::string& stream) {
  const std::string result = VerifyWith(*store_, stream);
  if (stream.empty()) {
    if (one_stream_per_pass_ == nullptr) {
      store::StoreOptions options = options_;  // The same roles and signing key.
      options.verify_streams_per_pass = 1;  // A pass over the log per stream.
      options.pool_size = 2;
      auto store = store::EventStore::Open(options);
      EXPECT_TRUE(store.ok()) << store.status();
      if (!store.ok()) return store.status().ToString();
      one_stream_per_pass_ = *std::move(store);
    }
    EXPECT_EQ(VerifyWith(*one_stream_per_pass_, stream), result) << "one stream per pass";
  }
  return result;
}

std::string StoreTest::SqlVerifyStream(const std::string& stream) {
  return QueryValue(dsn_, "SELECT CASE WHEN ok THEN 'ok ' || events_checked ELSE reason || ' "
                          "' || '" + stream + "@' || stream_version || ' #' || "
                          "coalesce(global_position, 0) END FROM logbook.verify_stream('" +
                              stream + "')");
}

std::string StoreTest::SqlVerifyAll() {
  return QueryValue(dsn_, "SELECT CASE WHEN ok THEN 'ok ' || events_checked ELSE reason || ' "
                          "' || coalesce(stream_id, '') || '@' || coalesce(stream_version, 0) "
                          "|| ' #' || coalesce(global_position, 0) END "
                          "FROM logbook.verify_all()");
}

std::string VerifyWith(store::EventStore& store, const std::string& stream,
                       const std::string& tenant) {
  auto v = store.StartVerify(stream, tenant);
  if (!v.ok()) return v.status().ToString();
  for (;;) {
    auto done = (*v)->Step(4);
    if (!done.ok()) return done.status().ToString();
    if (*done) break;
  }
  const store::VerifyReport& r = (*v)->report();
  if (!r.first_broken) return absl::StrCat("ok ", r.events_checked);
  const store::BrokenEvent& b = *r.first_broken;
  return absl::StrCat(ReasonName(b.reason), " ", b.stream_id, "@", b.stream_version, " #",
                      b.global_position);
}

}  // namespace logbook::testing
