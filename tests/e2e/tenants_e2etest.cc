// End to end: logbookd with a tokens file whose principals belong to two
// tenants with the same stream ids. Appends, ReadStream, ReadAll, categories,
// Subscribe on $all and on a category, snapshots, Verify and GetStream each
// show a tenant zero events of the other, and so do consumer groups of the
// same name; a cross-tenant admin names the tenant
// of each call; and PostgreSQL, asked as the application role with the other
// tenant's setting, returns zero rows.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "auth.h"
#include "events.h"
#include "logbook/client/client.h"
#include "logbook/client/worker.h"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::Event;

const std::map<std::string, std::string> kPrincipals = {
    {"t-acme", "ann reader,writer,operator,consumer acme *"},
    {"t-globex", "gus reader,writer,operator,consumer globex *"},
    {"t-dee", "dee reader,writer,operator,consumer - *"},
    {"t-root", "root admin * *"},
};

// "TYPE:stream@version#position:tenant:writer,..." of `events`.
std::string Listed(const absl::StatusOr<std::vector<v1::RecordedEvent>>& events) {
  if (!events.ok()) return events.status().ToString();
  std::vector<std::string> parts;
  for (const v1::RecordedEvent& e : *events) {
    parts.push_back(absl::StrCat(e.type(), ":", e.stream_id(), "@", e.stream_version(), "#",
                                 e.global_position(), ":", e.tenant(), ":", e.written_by()));
  }
  return absl::StrJoin(parts, ",");
}

v1::ExpectedVersion Any() {
  v1::ExpectedVersion any;
  any.mutable_any();
  return any;
}

class TenantsE2eTest : public testing::ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (HasFatalFailure()) return;
    tokens_ = ::testing::TempDir() + "/tenants_e2etest_tokens_" + std::to_string(getpid());
    std::string text;
    for (const auto& [token, rest] : kPrincipals) {
      absl::StrAppend(&text, service::TokenDigest(token), " ", rest, "\n");
    }
    std::ofstream(tokens_) << text;
    StartServer({"--auth-tokens", tokens_});
  }
  void TearDown() override { std::remove(tokens_.c_str()); }

  Client As(const std::string& token, const std::string& tenant = "") {
    ClientOptions options;
    options.address = server_->address();
    options.token = token;
    options.tenant = tenant;
    return Client(options);
  }

  // acme: order-1 at 1, 2 and order-2 at 4; globex: order-1 at 3, order-9
  // at 5.
  void Seed() {
    Client acme = As("t-acme"), globex = As("t-globex");
    ASSERT_TRUE(acme.Append("order-1", Any(), {Event("A0"), Event("A1")}).ok());
    ASSERT_TRUE(globex.Append("order-1", Any(), {Event("G0")}).ok());
    ASSERT_TRUE(acme.Append("order-2", Any(), {Event("A2")}).ok());
    ASSERT_TRUE(globex.Append("order-9", Any(), {Event("G1")}).ok());
  }

  // Every event a subscription to `request` delivers until it caught up.
  std::string SubscribedUntilCaughtUp(Client& client, v1::SubscribeRequest request) {
    absl::Mutex mu;
    std::vector<v1::RecordedEvent> events;
    bool caught_up = false;
    auto subscription = client.Subscribe(request, [&](const v1::SubscribeResponse& r) {
      absl::MutexLock lock(&mu);
      if (r.has_event()) events.push_back(r.event());
      if (r.has_caught_up()) caught_up = true;
      return !caught_up;
    });
    const absl::Status ended = subscription->Wait();
    if (!ended.ok()) return ended.ToString();
    absl::MutexLock lock(&mu);
    return Listed(events);
  }

  std::string tokens_;
};

TEST_F(TenantsE2eTest, TwoTenantsWithTheSameStreamIdsSeeOnlyTheirOwn) {
  Seed();
  Client acme = As("t-acme"), globex = As("t-globex");

  v1::ReadStreamRequest stream;
  stream.set_stream_id("order-1");
  EXPECT_EQ(Listed(acme.ReadStream(stream)),
            "A0:order-1@0#1:acme:ann,A1:order-1@1#2:acme:ann");
  EXPECT_EQ(Listed(globex.ReadStream(stream)), "G0:order-1@0#3:globex:gus");
  stream.set_stream_id("order-2");
  EXPECT_EQ(globex.ReadStream(stream).status().code(), absl::StatusCode::kNotFound);

  v1::ReadAllRequest all;
  EXPECT_EQ(Listed(acme.ReadAll(all)),
            "A0:order-1@0#1:acme:ann,A1:order-1@1#2:acme:ann,A2:order-2@0#4:acme:ann");
  EXPECT_EQ(Listed(globex.ReadAll(all)), "G0:order-1@0#3:globex:gus,G1:order-9@0#5:globex:gus");
  all.mutable_filter()->set_category("order");
  EXPECT_EQ(Listed(globex.ReadAll(all)), "G0:order-1@0#3:globex:gus,G1:order-9@0#5:globex:gus");

  auto acme_info = acme.GetStream("order-1");
  auto globex_info = globex.GetStream("order-1");
  ASSERT_TRUE(acme_info.ok() && globex_info.ok());
  EXPECT_EQ(acme_info->version(), 1u);
  EXPECT_EQ(globex_info->version(), 0u);
  EXPECT_EQ(globex.GetStream("order-2").status().code(), absl::StatusCode::kNotFound);

  // Subscriptions: the backlog, then live events of the tenant only.
  v1::SubscribeRequest sub_all;
  sub_all.mutable_all();
  EXPECT_EQ(SubscribedUntilCaughtUp(globex, sub_all),
            "G0:order-1@0#3:globex:gus,G1:order-9@0#5:globex:gus");
  v1::SubscribeRequest sub_category;
  sub_category.set_category("order");
  EXPECT_EQ(SubscribedUntilCaughtUp(acme, sub_category),
            "A0:order-1@0#1:acme:ann,A1:order-1@1#2:acme:ann,A2:order-2@0#4:acme:ann");
  absl::Mutex mu;
  std::vector<v1::RecordedEvent> live;
  v1::SubscribeRequest from_now;
  from_now.mutable_all();
  from_now.mutable_from_now();
  bool caught_up = false;
  auto subscription = acme.Subscribe(from_now, [&](const v1::SubscribeResponse& r) {
    absl::MutexLock lock(&mu);
    if (r.has_caught_up()) caught_up = true;
    if (r.has_event()) live.push_back(r.event());
    return true;
  });
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&caught_up), absl::Seconds(30)));
  }
  ASSERT_TRUE(globex.Append("order-1", Any(), {Event("G2")}).ok());
  ASSERT_TRUE(acme.Append("order-1", Any(), {Event("A3")}).ok());
  {
    absl::MutexLock lock(&mu);
    auto arrived = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !live.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(30)));
  }
  ASSERT_TRUE(acme.Append("order-2", Any(), {Event("A4")}).ok());
  {
    absl::MutexLock lock(&mu);
    auto arrived = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return live.size() >= 2; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(30)));
  }
  subscription->Stop();
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(Listed(live), "A3:order-1@2#7:acme:ann,A4:order-2@1#8:acme:ann");
  }

  // Snapshots of one stream id, one per tenant.
  ASSERT_TRUE(acme.SaveSnapshot("order-1", 1, 1, "acme state").ok());
  v1::LoadSnapshotRequest load;
  load.set_stream_id("order-1");
  EXPECT_EQ(globex.LoadSnapshot(load).status().code(), absl::StatusCode::kNotFound);
  auto loaded = acme.LoadSnapshot(load);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->state(), "acme state");

  // Verify: each tenant its own streams; not the log's positions.
  v1::VerifyRequest verify;
  verify.mutable_all();
  auto acme_verified = acme.Verify(verify);
  auto globex_verified = globex.Verify(verify);
  ASSERT_TRUE(acme_verified.ok() && globex_verified.ok());
  EXPECT_TRUE(acme_verified->ok());
  EXPECT_EQ(acme_verified->events_checked(), 5u);
  EXPECT_EQ(acme_verified->streams_checked(), 2u);
  EXPECT_FALSE(acme_verified->has_whole_log());
  EXPECT_TRUE(globex_verified->ok());
  EXPECT_EQ(globex_verified->events_checked(), 3u);

  // PostgreSQL as the application role with the other tenant's setting:
  // zero rows of acme's streams.
  const std::string app = testing::AsRole(dsn_, "logbook_app");
  EXPECT_EQ(testing::QueryValue(app, "SET logbook.tenant = 'globex';"
                                     " SELECT count(*) FROM logbook.event_log"
                                     " WHERE stream_id = 'order-2' OR written_by = 'ann'"),
            "0");
  EXPECT_EQ(testing::QueryValue(app, "SET logbook.tenant = 'globex';"
                                     " SELECT count(*) FROM logbook.snapshots"),
            "0");
  EXPECT_EQ(testing::QueryValue(app, "SET logbook.tenant = 'acme';"
                                     " SELECT count(*) FROM logbook.event_log"),
            "5");
}

TEST_F(TenantsE2eTest, ATenantIsTheCallersUnlessACrossTenantAdminNamesOne) {
  Seed();
  // The cross-tenant admin: globex's streams when it names globex, the
  // default tenant's when it names none.
  Client root_globex = As("t-root", "globex");
  EXPECT_EQ(Listed(root_globex.ReadAll({})),
            "G0:order-1@0#3:globex:gus,G1:order-9@0#5:globex:gus");
  auto written = root_globex.Append("order-9", Any(), {Event("R")});
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->first_version(), 1u);
  EXPECT_EQ(Listed(As("t-root").ReadAll({})), "");
  // Its own tenant may be named; another may not.
  EXPECT_EQ(Listed(As("t-globex", "globex").ReadStream([] {
              v1::ReadStreamRequest r;
              r.set_stream_id("order-9");
              return r;
            }())),
            "G1:order-9@0#5:globex:gus,R:order-9@1#6:globex:root");
  EXPECT_EQ(As("t-acme", "globex").ReadAll({}).status(),
            absl::PermissionDeniedError("principal 'ann' belongs to tenant 'acme', not 'globex'"));
  EXPECT_EQ(As("t-acme", "globex").Append("order-1", Any(), {Event("X")}).status(),
            absl::PermissionDeniedError("principal 'ann' belongs to tenant 'acme', not 'globex'"));
  EXPECT_EQ(As("t-root", "no/such").ReadAll({}).status(),
            absl::InvalidArgumentError("logbook-tenant metadata: tenant 'no/such' has '/' at "
                                       "byte 2; a tenant is [A-Za-z0-9._-], starting with a "
                                       "letter or digit"));
  EXPECT_EQ(Listed(As("t-root", "globex").ReadAll({})),
            "G0:order-1@0#3:globex:gus,G1:order-9@0#5:globex:gus,R:order-9@1#6:globex:root");
  // Nothing changed by the refused calls.
  EXPECT_EQ(testing::QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log"), "6");
}

// Two tenants each make a group named "g" on $all: each group delivers its
// tenant's events only, and each tenant lists and sees only its own.
TEST_F(TenantsE2eTest, ConsumerGroupsAreEachTenantsOwn) {
  Seed();
  v1::CreateConsumerGroupRequest create;
  create.set_group("g");
  create.mutable_target()->mutable_all();
  Client acme = As("t-acme"), globex = As("t-globex"), dee = As("t-dee");
  ASSERT_TRUE(acme.CreateConsumerGroup(create).ok());
  ASSERT_TRUE(globex.CreateConsumerGroup(create).ok());
  EXPECT_EQ(acme.CreateConsumerGroup(create).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(dee.GetConsumerGroup("g").status().code(), absl::StatusCode::kNotFound);
  auto listed = dee.ListConsumerGroups();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  listed = globex.ListConsumerGroups();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].group(), "g");

  // Each tenant's worker gets its tenant's events, each once.
  for (auto& [client, expected] : std::vector<std::pair<Client*, std::string>>{
           {&acme, "A0:order-1@0#1:acme:ann,A1:order-1@1#2:acme:ann,A2:order-2@0#4:acme:ann"},
           {&globex, "G0:order-1@0#3:globex:gus,G1:order-9@0#5:globex:gus"}}) {
    std::vector<v1::RecordedEvent> handled;
    const size_t want = std::count(expected.begin(), expected.end(), ',') + 1;
    WorkerOptions options;
    options.group = "g";
    options.consumer = "w";
    Worker* running = nullptr;
    Worker worker(*client, options, [&](const v1::Delivery& d) {
      handled.push_back(d.event());
      if (handled.size() == want) running->Stop();
      return absl::OkStatus();
    });
    running = &worker;
    const absl::Status ran = worker.Run();
    EXPECT_TRUE(ran.ok()) << ran;
    // PER_STREAM keeps each stream's order, not the log's.
    std::sort(handled.begin(), handled.end(), [](const auto& a, const auto& b) {
      return a.global_position() < b.global_position();
    });
    EXPECT_EQ(Listed(handled), expected);
  }
  auto acme_group = acme.GetConsumerGroup("g");
  auto globex_group = globex.GetConsumerGroup("g");
  ASSERT_TRUE(acme_group.ok() && globex_group.ok());
  EXPECT_EQ(acme_group->acked(), 3u);
  EXPECT_EQ(globex_group->acked(), 2u);

  // Deleting acme's group leaves globex's.
  EXPECT_TRUE(acme.DeleteConsumerGroup("g").ok());
  EXPECT_EQ(acme.GetConsumerGroup("g").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(globex.GetConsumerGroup("g").ok());
  // A name that would pass for another tenant's key is refused.
  EXPECT_EQ(dee.GetConsumerGroup("globex/g").status().code(), absl::StatusCode::kInvalidArgument);

  // PostgreSQL as the application role with acme's setting: no row of
  // globex's group.
  const std::string app = testing::AsRole(dsn_, "logbook_app");
  EXPECT_EQ(testing::QueryValue(app,
                                "SET logbook.tenant = 'acme';"
                                " SELECT (SELECT count(*) FROM logbook.consumer_groups) +"
                                " (SELECT count(*) FROM logbook.consumer_group_counters)"),
            "0");
  EXPECT_EQ(testing::QueryValue(app,
                                "SET logbook.tenant = 'globex';"
                                " SELECT string_agg(group_name, ',')"
                                " FROM logbook.consumer_groups"),
            "globex/g");
  // A row of acme's cannot name globex's group, foreign keys and all.
  EXPECT_EQ(testing::Exec(app,
                          "SET logbook.tenant = 'acme';"
                          " INSERT INTO logbook.consumer_group_members"
                          " (group_name, consumer, session) VALUES ('globex/g', 'w', 's')"),
            "ERROR:  new row for relation \"consumer_group_members\" violates check constraint"
            " \"consumer_group_members_tenant_check\"\n");
}

}  // namespace
}  // namespace logbook
