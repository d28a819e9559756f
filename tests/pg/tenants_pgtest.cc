// Tenants against a real PostgreSQL: two tenants with the same stream ids
// and event ids keep separate streams, versions, receipt chains, snapshots
// and deletions; each read shows one tenant's events; and PostgreSQL itself
// (row-level security on logbook.tenant) shows a session of the application
// role one tenant's rows, whatever its query asks for.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "events.h"
#include "logbook/store/event_store.h"
#include "logbook/store/migrations.h"
#include "logbook/store/uuid.h"
#include "store_fixture.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::AsRole;
using testing::Event;
using testing::QueryValue;

constexpr char kAcme[] = "acme";
constexpr char kGlobex[] = "globex";

Writer WriterOf(const std::string& tenant) { return {"alice", tenant}; }

// "TYPE@POSITION,..." of `events`.
std::string Listed(const absl::StatusOr<std::vector<RecordedEvent>>& events) {
  if (!events.ok()) return events.status().ToString();
  std::vector<std::string> parts;
  for (const RecordedEvent& e : *events) {
    parts.push_back(absl::StrCat(e.type, "@", e.global_position));
  }
  return absl::StrJoin(parts, ",");
}

class TenantsTest : public testing::StoreTest {
 protected:
  // acme's order-1 at 1 and 2, globex's order-1 at 3, acme's order-2 at 4,
  // globex's order-9 at 5.
  void SeedTwoTenants() {
    Append(kAcme, "order-1", {"A0", "A1"});
    Append(kGlobex, "order-1", {"G0"});
    Append(kAcme, "order-2", {"A2"});
    Append(kGlobex, "order-9", {"G1"});
  }

  AppendResult Append(const std::string& tenant, const std::string& stream,
                      const std::vector<std::string>& types,
                      ExpectedVersion expected = ExpectedVersion::Any()) {
    std::vector<NewEvent> events;
    for (const std::string& type : types) events.push_back(Event(type));
    auto r = store_->Append(stream, expected, std::move(events), WriterOf(tenant));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AppendResult{};
  }

  std::string ReadStream(const std::string& tenant, const std::string& stream) {
    ReadStreamQuery q;
    q.tenant = tenant;
    q.stream_id = stream;
    return Listed(store_->ReadStream(q));
  }

  std::string ReadAll(const std::string& tenant, const std::string& category = "") {
    ReadAllQuery q;
    q.tenant = tenant;
    q.filter.category = category;
    return Listed(store_->ReadAll(q));
  }

  // One value of `sql` in a session of `role` whose logbook.tenant is
  // `tenant` (RESET: unset).
  std::string AsTenant(const std::string& role, const std::string& tenant,
                       const std::string& sql) {
    const std::string set = tenant == "RESET" ? "RESET logbook.tenant"
                                              : absl::StrCat("SET logbook.tenant = '", tenant, "'");
    return QueryValue(AsRole(dsn_, role), absl::StrCat(set, "; ", sql));
  }
};

TEST_F(TenantsTest, TheSameStreamIdIsAStreamOfEachTenant) {
  SeedTwoTenants();
  ListQuery list;
  list.tenant = kGlobex;
  auto streams = store_->ListStreams(list);
  ASSERT_TRUE(streams.ok()) << streams.status();
  ASSERT_EQ(streams->size(), 2u);
  EXPECT_EQ((*streams)[0].stream_id + "@" + std::to_string((*streams)[0].last_position) + " " +
                (*streams)[1].stream_id + "@" + std::to_string((*streams)[1].last_position),
            "order-1@3 order-9@5");
  list.tenant = kDefaultTenant;
  EXPECT_EQ(store_->ListStreams(list)->size(), 0u);
  EXPECT_EQ(store_->ListCategories(list)->size(), 0u);
  EXPECT_EQ(ReadStream(kAcme, "order-1"), "A0@1,A1@2");
  EXPECT_EQ(ReadStream(kGlobex, "order-1"), "G0@3");
  EXPECT_EQ(ReadStream(kGlobex, "order-2"),
            absl::NotFoundError("stream 'order-2' does not exist").ToString());
  EXPECT_EQ(ReadStream(kDefaultTenant, "order-1"),
            absl::NotFoundError("stream 'order-1' does not exist").ToString());

  // Versions and expected versions are each tenant's own.
  const AppendResult g = Append(kGlobex, "order-1", {"G2"}, ExpectedVersion::Exact(0));
  EXPECT_EQ(g.first_version, 1u);
  EXPECT_EQ(g.first_position, 6u);
  auto conflict = store_->Append("order-1", ExpectedVersion::Exact(0), {Event("A9")},
                                 WriterOf(kAcme));
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAborted);
  auto acme = store_->GetStream("order-1", kAcme);
  auto globex = store_->GetStream("order-1", kGlobex);
  ASSERT_TRUE(acme.ok() && globex.ok());
  EXPECT_EQ(acme->version, 1u);
  EXPECT_EQ(acme->last_position, 2u);
  EXPECT_EQ(globex->version, 1u);
  EXPECT_EQ(globex->last_position, 6u);
  EXPECT_NE(acme->head_hash, globex->head_hash);  // Two receipt chains.
  EXPECT_EQ(store_->GetStream("order-9", kAcme).status(),
            absl::NotFoundError("stream 'order-9' does not exist"));

  // $all and categories: the tenant's events in position order, with jumps.
  EXPECT_EQ(ReadAll(kAcme), "A0@1,A1@2,A2@4");
  EXPECT_EQ(ReadAll(kGlobex), "G0@3,G1@5,G2@6");
  EXPECT_EQ(ReadAll(kGlobex, "order"), "G0@3,G1@5,G2@6");
  EXPECT_EQ(ReadAll(kDefaultTenant), "");
  EXPECT_EQ(ReadAll(kAllTenants), "A0@1,A1@2,G0@3,A2@4,G1@5,G2@6");
  ReadAllQuery q;
  q.tenant = kGlobex;
  auto events = store_->ReadAll(q);
  ASSERT_TRUE(events.ok());
  for (const RecordedEvent& e : *events) {
    EXPECT_EQ(e.tenant, kGlobex);
    EXPECT_EQ(e.written_by, "alice");
  }
}

TEST_F(TenantsTest, EachTenantVerifiesItsOwnStreams) {
  SeedTwoTenants();
  EXPECT_EQ(testing::VerifyWith(*store_, "order-1", kAcme), "ok 2");
  EXPECT_EQ(testing::VerifyWith(*store_, "order-1", kGlobex), "ok 1");
  EXPECT_EQ(testing::VerifyWith(*store_, "", kAcme), "ok 3");
  EXPECT_EQ(testing::VerifyWith(*store_, "", kGlobex), "ok 2");
  // Other tenants' positions are holes in each one's view: the log's
  // positions are not checked by either.
  auto v = store_->StartVerify("", kAcme);
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(*(*v)->Step(100));
  EXPECT_FALSE((*v)->report().whole_log);
  EXPECT_EQ(AsTenant("logbook_app", kGlobex,
                     "SELECT ok || ' ' || events_checked || ' ' || streams_checked"
                     " FROM logbook.verify_all()"),
            "true 2 2");
  EXPECT_EQ(AsTenant("logbook_app", kAcme,
                     "SELECT ok || ' ' || events_checked FROM logbook.verify_stream('order-1')"),
            "true 2");
  // A tampered event is named in its tenant only.
  Tamper("UPDATE logbook.event_log SET data = '{\"x\":1}' WHERE global_position = 3");
  EXPECT_EQ(testing::VerifyWith(*store_, "", kGlobex), "data_changed order-1@0 #3");
  EXPECT_EQ(testing::VerifyWith(*store_, "", kAcme), "ok 3");
}

TEST_F(TenantsTest, ASingleTenantStillVerifiesTheWholeLog) {
  Append(kAcme, "order-1", {"A0", "A1", "A2"});
  auto v = store_->StartVerify("", kAcme);
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(*(*v)->Step(100));
  EXPECT_TRUE((*v)->report().whole_log);
  Tamper("DELETE FROM logbook.event_log WHERE global_position = 3");
  EXPECT_EQ(testing::VerifyWith(*store_, "", kAcme), "event_missing order-1@2 #3");
}

TEST_F(TenantsTest, EventIdsAreUniquePerTenant) {
  const std::string id = NewUuid();
  auto a = store_->Append("pay-1", ExpectedVersion::Any(), {Event("P").Id(id)}, WriterOf(kAcme));
  auto g = store_->Append("pay-1", ExpectedVersion::Any(), {Event("P").Id(id)},
                          WriterOf(kGlobex));
  ASSERT_TRUE(a.ok() && g.ok()) << a.status() << g.status();
  EXPECT_FALSE(g->duplicate);
  EXPECT_EQ(g->first_position, 2u);
  auto again = store_->Append("pay-1", ExpectedVersion::Any(), {Event("P").Id(id)},
                              WriterOf(kAcme));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->first_position, 1u);
  EXPECT_EQ(Rows(), "2/2");
}

TEST_F(TenantsTest, SnapshotsAndDeletionsStayInTheirTenant) {
  SeedTwoTenants();
  Snapshot s;
  s.tenant = kAcme;
  s.stream_id = "order-1";
  s.stream_version = 1;
  s.state = "acme state";
  ASSERT_TRUE(store_->SaveSnapshot(s).ok());
  SnapshotQuery q;
  q.stream_id = "order-1";
  q.tenant = kGlobex;
  EXPECT_EQ(store_->LoadSnapshot(q).status(),
            absl::NotFoundError("stream 'order-1' has no snapshot"));
  q.tenant = kAcme;
  auto loaded = store_->LoadSnapshot(q);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->state, "acme state");
  EXPECT_EQ(loaded->tenant, kAcme);

  auto deleted = store_->DeleteStream("order-1", ExpectedVersion::Any(), true, WriterOf(kAcme));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->audit_position, 6u);
  EXPECT_EQ(ReadStream(kGlobex, "order-1"), "G0@3");
  EXPECT_EQ(ReadStream(kAcme, "$audit"), "StreamDeleted@6");
  EXPECT_EQ(ReadStream(kGlobex, "$audit"),
            absl::NotFoundError("stream '$audit' does not exist").ToString());
  EXPECT_EQ(testing::VerifyWith(*store_, "", kAcme), "ok 4");
  EXPECT_EQ(testing::VerifyWith(*store_, "", kGlobex), "ok 2");
}

// What a DBA's psql session as the application role sees: only the rows of
// the tenant its logbook.tenant names, whatever the query asks for.
TEST_F(TenantsTest, PostgreSQLShowsTheApplicationRoleOneTenantsRows) {
  SeedTwoTenants();
  Snapshot s;
  s.tenant = kGlobex;
  s.stream_id = "order-9";
  s.state = "x";
  ASSERT_TRUE(store_->SaveSnapshot(s).ok());
  const std::string counts =
      "SELECT (SELECT count(*) FROM logbook.event_log) || '/' ||"
      " (SELECT count(*) FROM logbook.streams) || '/' || (SELECT count(*) FROM logbook.snapshots)"
      " || '/' || (SELECT count(*) FROM logbook.receipts)";
  EXPECT_EQ(AsTenant("logbook_app", kAcme, counts), "3/2/0/3");
  EXPECT_EQ(AsTenant("logbook_app", kGlobex, counts), "2/2/1/2");
  EXPECT_EQ(AsTenant("logbook_app", "initech", counts), "0/0/0/0");
  EXPECT_EQ(AsTenant("logbook_app", "RESET", counts), "0/0/0/0");
  // "Every tenant" is for members of logbook_all_tenants only.
  EXPECT_EQ(AsTenant("logbook_app", "*", counts), "0/0/0/0");
  EXPECT_EQ(AsTenant("logbook_redactor", "*", "SELECT count(*) FROM logbook.event_log"), "5");
  // Asking for the other tenant's rows by name finds none.
  EXPECT_EQ(AsTenant("logbook_app", kAcme,
                     "SELECT count(*) FROM logbook.event_log WHERE tenant = 'globex'"),
            "0");
  EXPECT_EQ(AsTenant("logbook_app", kAcme,
                     "SELECT count(*) FROM logbook.streams WHERE stream_id = 'order-9'"),
            "0");
  // The owner is held to the policies too (FORCE): its functions write and
  // read the session's tenant only.
  EXPECT_EQ(AsTenant("logbook_owner", kAcme, "SELECT count(*) FROM logbook.event_log"), "3");
  // Unset, the functions that write or verify refuse.
  EXPECT_NE(testing::Exec(AsRole(dsn_, "logbook_app"),
                          "RESET logbook.tenant; SELECT * FROM logbook.verify_all()")
                .find("logbook: set logbook.tenant to one tenant first (it is unset)"),
            std::string::npos);
}

TEST_F(TenantsTest, ConcurrentAppendsOfTwoTenantsToOneStreamIdStayApart) {
  constexpr int kThreads = 8, kAppends = 15;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string tenant = t % 2 == 0 ? kAcme : kGlobex;
      for (int i = 0; i < kAppends; ++i) {
        auto r = store_->Append("shared-1", ExpectedVersion::Any(), {Event("E")},
                                WriterOf(tenant));
        EXPECT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  constexpr uint64_t kPerTenant = kThreads / 2 * kAppends;
  for (const char* tenant : {kAcme, kGlobex}) {
    auto info = store_->GetStream("shared-1", tenant);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->version, kPerTenant - 1) << tenant;
    ReadStreamQuery q;
    q.tenant = tenant;
    q.stream_id = "shared-1";
    q.max_count = 1000;
    auto events = store_->ReadStream(q);
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), kPerTenant);
    for (uint64_t v = 0; v < kPerTenant; ++v) {
      EXPECT_EQ((*events)[v].stream_version, v);
      EXPECT_EQ((*events)[v].tenant, tenant);
    }
    EXPECT_EQ(testing::VerifyWith(*store_, "", tenant), absl::StrCat("ok ", kPerTenant));
  }
}

TEST_F(TenantsTest, BadTenantsAreRefused) {
  ReadStreamQuery q;
  q.stream_id = "order-1";
  q.tenant = "a b";
  EXPECT_EQ(store_->ReadStream(q).status(),
            absl::InvalidArgumentError("tenant: tenant 'a b' has ' ' at byte 1; a tenant is "
                                       "[A-Za-z0-9._-], starting with a letter or digit"));
  q.tenant = "";
  EXPECT_EQ(store_->ReadStream(q).status(),
            absl::InvalidArgumentError("tenant: a tenant is 1 to 64 bytes, not 0"));
  EXPECT_EQ(store_->Append("order-1", ExpectedVersion::Any(), {Event("A")}, {"alice", "*"})
                .status(),
            absl::InvalidArgumentError("writer.tenant: tenant '*' has '*' at byte 0; a tenant "
                                       "is [A-Za-z0-9._-], starting with a letter or digit"));
  EXPECT_EQ(store_->GetStream("order-1", std::string(65, 'a')).status(),
            absl::InvalidArgumentError("tenant: a tenant is 1 to 64 bytes, not 65"));
  EXPECT_EQ(Rows(), "0/0");
}

// Reading every tenant needs an admin connection that may; without one the
// read says so instead of seeing nothing.
TEST_F(TenantsTest, EveryTenantNeedsAnAdminRoleThatMayReadThem) {
  StoreOptions options;
  options.dsn = AsRole(dsn_, "logbook_app");  // And no admin_dsn: the same role.
  auto store = EventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ReadAllQuery q;
  q.tenant = kAllTenants;
  EXPECT_EQ((*store)->ReadAll(q).status(),
            absl::PermissionDeniedError(
                "reading every tenant's events needs a role that is a member of "
                "logbook_all_tenants, which 'logbook_app' is not (give logbookd --admin-database "
                "as one; docs/operations.md \"Roles\")"));
}

// Row-level security binds neither superusers nor BYPASSRLS roles: tenants
// stay apart in PostgreSQL only when the schema's owner and the store's role
// are neither, which logbookd checks before it serves a tenant other than
// the default one.
TEST_F(TenantsTest, IsolationNeedsRolesThatRowLevelSecurityBinds) {
  EXPECT_TRUE(store_->CheckTenantIsolation().ok());

  const std::string superuser_owned = testing::DsnFor(testing::CreateDatabase());
  ASSERT_TRUE(MigrateUp(superuser_owned, EmbeddedMigrations()).ok());
  StoreOptions options;
  options.dsn = AsRole(superuser_owned, "logbook_app");
  auto store = EventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->CheckTenantIsolation(),
            absl::FailedPreconditionError(
                "the schema's owner 'logbook_admin' is a superuser or has BYPASSRLS, so "
                "row-level security does not bind the functions that write; run the migrations "
                "as a role without either (docs/operations.md \"Roles\")"));

  options.dsn = dsn_;  // The superuser.
  store = EventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->CheckTenantIsolation(),
            absl::FailedPreconditionError(
                "the database role 'logbook_admin' is a superuser or has BYPASSRLS, so row-level "
                "security does not bind it; connect as a member of logbook_app "
                "(docs/operations.md \"Roles\")"));
}

}  // namespace
}  // namespace logbook::store
