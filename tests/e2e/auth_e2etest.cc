// End to end: logbookd with --auth-tokens. Every RPC without credentials,
// with an unknown token, with a token of another role, and with a scope
// that does not cover the stream gets its exact code and changes nothing;
// scoped reads of $all and categories see only their scope; the tokens file
// is read again on SIGHUP.
#include <grpcpp/grpcpp.h>
#include <pqxx/pqxx>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "auth.h"
#include "events.h"
#include "jwts.h"
#include "keys.h"
#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "server_fixture.h"
#include "test_env.h"

namespace logbook {
namespace {

using testing::Event;

// Principals by token.
const std::map<std::string, std::string> kPrincipals = {
    {"t-reader", "ann reader - *"},     {"t-writer", "wes writer - *"},
    {"t-consumer", "cora consumer - *"}, {"t-operator", "otto operator - *"},
    {"t-admin", "ada admin - *"},        {"t-billing", "billing reader,writer - payments"},
    {"t-sam", "sam reader,writer,consumer - * subscriptions=10,consumers=1,appends=1"},
    {"t-tom", "tom reader - orders-*,payments"},
};

std::string TokensFile(const std::map<std::string, std::string>& principals) {
  std::string text = "# made by auth_e2etest\n";
  for (const auto& [token, rest] : principals) {
    absl::StrAppend(&text, service::TokenDigest(token), " ", rest, "\n");
  }
  return text;
}

class AuthE2eTest : public testing::ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (HasFatalFailure()) return;
    // Seeded before authentication is on: one event, one group.
    Append("payments-1", {Event("Paid")});
    Append("orders-1", {Event("Placed")});
    grpc::ClientContext ctx;
    v1::CreateConsumerGroupRequest create;
    create.set_group("g");
    create.mutable_target()->mutable_all();
    v1::ConsumerGroupInfo info;
    ASSERT_TRUE(stub_->CreateConsumerGroup(&ctx, create, &info).ok());
    tokens_ = ::testing::TempDir() + "/auth_e2etest_tokens_" + std::to_string(getpid());
    std::ofstream(tokens_) << TokensFile(kPrincipals);
    jwt_keys_ = ::testing::TempDir() + "/auth_e2etest_jwt_" + std::to_string(getpid());
    std::ofstream(jwt_keys_) << idp_->public_pem;
    // Many failures from this test's one address are the point here
    // (admin_e2etest shows the limit).
    StartServer({"--auth-tokens", tokens_, "--auth-failures-per-minute", "1000",
                 "--auth-jwt-key", jwt_keys_, "--auth-jwt-issuer", "https://idp.test",
                 "--auth-jwt-audience", "logbook"});
  }
  void TearDown() override {
    std::remove(tokens_.c_str());
    std::remove(jwt_keys_.c_str());
  }
  static void SetUpTestSuite() {
    idp_ = new testing::PemKeyPair(testing::NewRsaKey());
    stranger_ = new testing::PemKeyPair(testing::NewRsaKey());
  }

  // A JWT for `sub` with every role, signed by `key`, expiring `expires_in`
  // seconds from now.
  static std::string Jwt(const testing::PemKeyPair& key, const std::string& sub,
                         int64_t expires_in, const std::string& roles =
                             R"(["reader","writer","consumer","operator","admin"])") {
    return testing::MintJwt(
        key, "RS256",
        absl::StrCat(R"({"sub":")", sub, R"(","iss":"https://idp.test","aud":"logbook","exp":)",
                     absl::ToUnixSeconds(absl::Now()) + expires_in, R"(,"roles":)", roles, "}"));
  }

  static testing::PemKeyPair* idp_;       // The identity provider logbookd trusts.
  static testing::PemKeyPair* stranger_;  // One it does not.

  // A context carrying `token` ("": none).
  static void Authorize(grpc::ClientContext& ctx, const std::string& token) {
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  }

  // Every RPC of the service, each as one call with `token` that must fail
  // before it starts; by name.
  std::map<std::string, std::function<grpc::Status(const std::string& token)>> Calls() {
    v1::EventStore::Stub& stub = *stub_;
    std::map<std::string, std::function<grpc::Status(const std::string&)>> calls;
    calls["Append"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::AppendResponse r;
      return stub.Append(&ctx, ServerTest::Request("orders-1", {Event("Sneaked")}), &r);
    };
    calls["ReadStream"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::ReadStreamRequest req;
      req.set_stream_id("orders-1");
      auto reader = stub.ReadStream(&ctx, req);
      v1::ReadResponse m;
      while (reader->Read(&m)) {
      }
      return reader->Finish();
    };
    calls["ReadAll"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      auto reader = stub.ReadAll(&ctx, v1::ReadAllRequest());
      v1::ReadResponse m;
      while (reader->Read(&m)) {
      }
      return reader->Finish();
    };
    calls["GetStream"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::GetStreamRequest req;
      req.set_stream_id("orders-1");
      v1::StreamInfo r;
      return stub.GetStream(&ctx, req, &r);
    };
    calls["Subscribe"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::SubscribeRequest req;
      req.mutable_all();
      auto reader = stub.Subscribe(&ctx, req);
      v1::SubscribeResponse m;
      while (reader->Read(&m)) {
      }
      return reader->Finish();
    };
    calls["Verify"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::VerifyRequest req;
      req.mutable_all();
      auto reader = stub.Verify(&ctx, req);
      v1::VerifyResponse m;
      while (reader->Read(&m)) {
      }
      return reader->Finish();
    };
    calls["DeleteStream"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::DeleteStreamRequest req;
      req.set_stream_id("orders-1");
      req.set_tombstone(true);
      v1::DeleteStreamResponse r;
      return stub.DeleteStream(&ctx, req, &r);
    };
    calls["RedactEvent"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::RedactEventRequest req;
      req.set_stream_id("orders-1");
      req.set_reason("test");
      v1::RedactEventResponse r;
      return stub.RedactEvent(&ctx, req, &r);
    };
    calls["SaveSnapshot"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::SaveSnapshotRequest req;
      req.set_stream_id("orders-1");
      req.set_state("{}");
      v1::SaveSnapshotResponse r;
      return stub.SaveSnapshot(&ctx, req, &r);
    };
    calls["LoadSnapshot"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::LoadSnapshotRequest req;
      req.set_stream_id("orders-1");
      v1::Snapshot r;
      return stub.LoadSnapshot(&ctx, req, &r);
    };
    calls["Checkpoint(create)"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::CheckpointRequest req;
      req.set_create(true);
      v1::SignedCheckpoint r;
      return stub.Checkpoint(&ctx, req, &r);
    };
    calls["CreateConsumerGroup"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::CreateConsumerGroupRequest req;
      req.set_group("sneaked");
      req.mutable_target()->mutable_all();
      v1::ConsumerGroupInfo r;
      return stub.CreateConsumerGroup(&ctx, req, &r);
    };
    calls["UpdateConsumerGroup"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::UpdateConsumerGroupRequest req;
      req.set_group("g");
      req.mutable_settings()->set_max_deliveries(1);
      v1::ConsumerGroupInfo r;
      return stub.UpdateConsumerGroup(&ctx, req, &r);
    };
    calls["DeleteConsumerGroup"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::DeleteConsumerGroupRequest req;
      req.set_group("g");
      v1::DeleteConsumerGroupResponse r;
      return stub.DeleteConsumerGroup(&ctx, req, &r);
    };
    calls["ListConsumerGroups"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::ListConsumerGroupsResponse r;
      return stub.ListConsumerGroups(&ctx, v1::ListConsumerGroupsRequest(), &r);
    };
    calls["GetConsumerGroup"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::GetConsumerGroupRequest req;
      req.set_group("g");
      v1::ConsumerGroupInfo r;
      return stub.GetConsumerGroup(&ctx, req, &r);
    };
    calls["Consume"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      auto stream = stub.Consume(&ctx);
      v1::ConsumeRequest join;
      join.mutable_join()->set_group("g");
      join.mutable_join()->set_consumer("c1");
      stream->Write(join);
      stream->WritesDone();
      v1::ConsumeResponse m;
      while (stream->Read(&m)) {
      }
      return stream->Finish();
    };
    calls["ListParked"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::ListParkedRequest req;
      req.set_group("g");
      v1::ListParkedResponse r;
      return stub.ListParked(&ctx, req, &r);
    };
    calls["ReplayParked"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::ReplayParkedRequest req;
      req.mutable_selection()->set_group("g");
      req.mutable_selection()->mutable_all();
      v1::ReplayParkedResponse r;
      return stub.ReplayParked(&ctx, req, &r);
    };
    calls["DropParked"] = [&stub](const std::string& token) {
      grpc::ClientContext ctx;
      Authorize(ctx, token);
      v1::DropParkedRequest req;
      req.mutable_selection()->set_group("g");
      req.mutable_selection()->mutable_all();
      v1::DropParkedResponse r;
      return stub.DropParked(&ctx, req, &r);
    };
    return calls;
  }

  // What the log and the groups hold, as the admin sees them.
  std::string State() {
    ClientOptions options;
    options.address = server_->address();
    options.token = "t-admin";
    Client admin(options);
    auto events = admin.ReadAll(v1::ReadAllRequest());
    auto groups = admin.ListConsumerGroups();
    if (!events.ok()) return events.status().ToString();
    if (!groups.ok()) return groups.status().ToString();
    std::string out;
    for (const auto& e : *events) absl::StrAppend(&out, e.stream_id(), "@", e.stream_version(), " ");
    for (const auto& g : *groups) {
      absl::StrAppend(&out, "group ", g.group(), " max_deliveries ",
                      g.settings().max_deliveries(), " ");
    }
    return out;
  }

  std::string tokens_;
  std::string jwt_keys_;
};

testing::PemKeyPair* AuthE2eTest::idp_ = nullptr;
testing::PemKeyPair* AuthE2eTest::stranger_ = nullptr;

TEST_F(AuthE2eTest, EveryCallNeedsCredentialsAndTheRightRole) {
  const std::string before = State();
  EXPECT_EQ(before, "payments-1@0 orders-1@0 group g max_deliveries 10 ");
  // The role each call needs, and a token without it.
  const std::map<std::string, std::pair<std::string, std::string>> needs = {
      {"Append", {"writer", "t-reader"}},
      {"ReadStream", {"reader", "t-writer"}},
      {"ReadAll", {"reader", "t-writer"}},
      {"GetStream", {"reader", "t-writer"}},
      {"Subscribe", {"reader", "t-consumer"}},
      {"Verify", {"reader", "t-writer"}},
      {"DeleteStream", {"operator", "t-writer"}},
      {"RedactEvent", {"admin", "t-operator"}},
      {"SaveSnapshot", {"writer", "t-reader"}},
      {"LoadSnapshot", {"reader", "t-writer"}},
      {"Checkpoint(create)", {"operator", "t-reader"}},
      {"CreateConsumerGroup", {"operator", "t-consumer"}},
      {"UpdateConsumerGroup", {"operator", "t-consumer"}},
      {"DeleteConsumerGroup", {"operator", "t-reader"}},
      {"ListConsumerGroups", {"reader or consumer or operator", "t-writer"}},
      {"GetConsumerGroup", {"reader or consumer or operator", "t-writer"}},
      {"Consume", {"consumer", "t-operator"}},
      {"ListParked", {"operator", "t-consumer"}},
      {"ReplayParked", {"operator", "t-consumer"}},
      {"DropParked", {"operator", "t-consumer"}},
  };
  const std::map<std::string, std::string> role_names = {
      {"t-reader", "ann has reader"},       {"t-writer", "wes has writer"},
      {"t-consumer", "cora has consumer"}, {"t-operator", "otto has operator"}};
  auto calls = Calls();
  ASSERT_EQ(calls.size(), needs.size());
  for (auto& [name, call] : calls) {
    SCOPED_TRACE(name);
    grpc::Status none = call("");
    EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(none.error_message(),
              "this server requires authentication: send the metadata 'authorization: Bearer "
              "<token>' or a client certificate");
    grpc::Status unknown = call("t-nobody");
    EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(unknown.error_message(), "authorization: unknown token");
    // JWTs with every role: expired an hour ago, or signed by a stranger.
    grpc::Status expired = call(Jwt(*idp_, "jules", -3600));
    EXPECT_EQ(expired.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(absl::StartsWith(expired.error_message(), "authorization: the JWT expired at "))
        << expired.error_message();
    grpc::Status forged = call(Jwt(*stranger_, "jules", 3600));
    EXPECT_EQ(forged.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(forged.error_message(), "authorization: the JWT's signature does not verify");
    grpc::Status jwt_denied = call(Jwt(*idp_, "jules", 3600, "[]"));
    EXPECT_EQ(jwt_denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    const auto& [role, token] = needs.at(name);
    grpc::Status denied = call(token);
    EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    const std::string call_name = name == "Checkpoint(create)" ? "Checkpoint" : name;
    EXPECT_EQ(denied.error_message(),
              absl::StrCat(call_name, " needs the role ", role, "; ", role_names.at(token)));
  }
  EXPECT_EQ(State(), before);
  // The refusals are logged with the source, never the token.
  EXPECT_NE(server_->log().find("Append from ipv4:127.0.0.1 refused: authorization: unknown token"),
            std::string::npos);
  EXPECT_EQ(server_->log().find("t-nobody"), std::string::npos);

  // A valid JWT speaks for its sub, who is recorded as the writer.
  ClientOptions options;
  options.address = server_->address();
  options.token = Jwt(*idp_, "jules", 3600, R"(["reader","writer"])");
  Client jules(options);
  ASSERT_TRUE(jules.Append("orders-7", expect::NoStream(), {Event("Placed")}).ok());
  v1::ReadStreamRequest read;
  read.set_stream_id("orders-7");
  auto events = jules.ReadStream(read);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].written_by(), "jules");
}

TEST_F(AuthE2eTest, AScopedPrincipalSeesAndWritesOnlyItsScope) {
  ClientOptions options;
  options.address = server_->address();
  options.token = "t-billing";
  Client billing(options);
  ASSERT_TRUE(billing.Append("payments-2", expect::Any(), {Event("Paid")}).ok());
  absl::Status outside = billing.Append("orders-2", expect::Any(), {Event("Placed")}).status();
  EXPECT_EQ(outside.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(outside.message(),
            "stream_id: stream 'orders-2' is outside the scopes of billing (payments)");
  v1::ReadStreamRequest orders;
  orders.set_stream_id("orders-1");
  EXPECT_EQ(billing.ReadStream(orders).status().code(), absl::StatusCode::kPermissionDenied);

  // $all, as billing asks for it: only payments.
  auto all = billing.ReadAll(v1::ReadAllRequest());
  ASSERT_TRUE(all.ok()) << all.status();
  std::string seen;
  for (const auto& e : *all) absl::StrAppend(&seen, e.stream_id(), " ");
  EXPECT_EQ(seen, "payments-1 payments-2 ");
  v1::ReadAllRequest users;
  users.mutable_filter()->set_category("orders");
  EXPECT_EQ(billing.ReadAll(users).status().ToString(),
            "PERMISSION_DENIED: filter: reads nothing within the scopes of billing (payments)");

  // A subscription to $all: the same, up to the live point.
  v1::SubscribeRequest sub;
  sub.mutable_all();
  std::vector<std::string> delivered;
  auto subscription = billing.Subscribe(sub, [&](const v1::SubscribeResponse& m) {
    if (m.has_event()) delivered.push_back(m.event().stream_id());
    return !m.has_caught_up();
  });
  EXPECT_TRUE(subscription->Wait().ok());
  EXPECT_EQ(delivered, (std::vector<std::string>{"payments-1", "payments-2"}));

  // Consumer groups beyond its scope are neither listed nor readable.
  auto groups = billing.ListConsumerGroups();
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_TRUE(groups->empty());
  EXPECT_EQ(billing.GetConsumerGroup("g").status().ToString(),
            "PERMISSION_DENIED: group 'g': reaches beyond the scopes of billing (payments)");
  v1::VerifyRequest verify_all;
  verify_all.mutable_all();
  EXPECT_EQ(billing.Verify(verify_all).status().code(), absl::StatusCode::kPermissionDenied);
}

// A principal of two scopes reads and subscribes to $all and gets the
// streams of both, and nothing else, caught up and live.
TEST_F(AuthE2eTest, AReadOfSeveralScopesGetsTheirUnion) {
  ClientOptions options;
  options.address = server_->address();
  options.token = "t-admin";
  Client admin(options);
  ASSERT_TRUE(admin.Append("users-1", expect::Any(), {Event("Joined")}).ok());
  ASSERT_TRUE(admin.Append("payments-2", expect::Any(), {Event("Paid")}).ok());
  options.token = "t-tom";
  Client tom(options);
  auto all = tom.ReadAll(v1::ReadAllRequest());
  ASSERT_TRUE(all.ok()) << all.status();
  std::string seen;
  for (const auto& e : *all) absl::StrAppend(&seen, e.stream_id(), " ");
  EXPECT_EQ(seen, "payments-1 orders-1 payments-2 ");
  v1::ReadAllRequest backward;
  backward.set_direction(v1::BACKWARD);
  backward.set_max_count(2);
  all = tom.ReadAll(backward);
  ASSERT_TRUE(all.ok()) << all.status();
  seen.clear();
  for (const auto& e : *all) absl::StrAppend(&seen, e.stream_id(), " ");
  EXPECT_EQ(seen, "payments-2 orders-1 ");
  // Within the union, the caller's own filter still applies.
  v1::ReadAllRequest paid;
  paid.mutable_filter()->add_event_types("Paid");
  all = tom.ReadAll(paid);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 2u);

  v1::SubscribeRequest sub;
  sub.mutable_all();
  std::vector<std::string> delivered;
  absl::Notification caught_up, done;
  auto subscription = tom.Subscribe(sub, [&](const v1::SubscribeResponse& m) {
    if (m.has_caught_up() && !caught_up.HasBeenNotified()) caught_up.Notify();
    if (m.has_event()) delivered.push_back(m.event().stream_id());
    if (delivered.size() == 4) {
      done.Notify();
      return false;
    }
    return true;
  });
  ASSERT_TRUE(caught_up.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(admin.Append("users-2", expect::Any(), {Event("Joined")}).ok());
  ASSERT_TRUE(admin.Append("orders-9", expect::Any(), {Event("Placed")}).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(delivered,
            (std::vector<std::string>{"payments-1", "orders-1", "payments-2", "orders-9"}));
}

// Each event names the principal that wrote it, from its credentials: reads,
// subscriptions and $audit records say who, and the receipts cover it.
TEST_F(AuthE2eTest, EachEventNamesThePrincipalThatWroteIt) {
  auto client = [&](const std::string& token) {
    ClientOptions options;
    options.address = server_->address();
    options.token = token;
    return Client(options);
  };
  ASSERT_TRUE(client("t-writer").Append("orders-5", expect::NoStream(), {Event("Placed")}).ok());
  ASSERT_TRUE(client("t-billing").Append("payments-5", expect::Any(), {Event("Paid")}).ok());
  ASSERT_TRUE(client("t-operator").DeleteStream("orders-5", expect::Exact(0), false).ok());

  auto all = client("t-admin").ReadAll(v1::ReadAllRequest());
  ASSERT_TRUE(all.ok()) << all.status();
  std::string seen;
  for (const auto& e : *all) {
    absl::StrAppend(&seen, e.stream_id(), ":", e.type(), ":", e.written_by(), ":", e.tenant(),
                    " ");
  }
  // The seeded events were appended before authentication was on.
  EXPECT_EQ(seen,
            "payments-1:Paid:anonymous:default orders-1:Placed:anonymous:default "
            "orders-5:Placed:wes:default payments-5:Paid:billing:default "
            "$audit:StreamDeleted:otto:default ");

  v1::SubscribeRequest sub;
  sub.set_stream_id("payments-5");
  std::vector<std::string> writers;
  Client reader = client("t-reader");
  auto subscription = reader.Subscribe(sub, [&](const v1::SubscribeResponse& m) {
    if (m.has_event()) writers.push_back(m.event().written_by());
    return !m.has_caught_up();
  });
  EXPECT_TRUE(subscription->Wait().ok());
  EXPECT_EQ(writers, std::vector<std::string>{"billing"});

  // Naming someone else afterwards is caught at that event.
  ASSERT_EQ(testing::Exec(dsn_, "SET session_replication_role = replica; "
                                "UPDATE logbook.event_log SET written_by = 'ann' "
                                "WHERE stream_id = 'payments-5'"),
            "");
  v1::VerifyRequest verify;
  verify.set_stream_id("payments-5");
  auto report = reader.Verify(verify);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(report->first_broken().reason(), v1::EVENT_CHANGED);
  EXPECT_EQ(report->first_broken().stream_version(), 0u);
  EXPECT_EQ(report->first_broken().global_position(), 4u);
}

// sam may hold 10 subscriptions, 1 consumer and 1 append in flight (its
// tokens-file line): one more is RESOURCE_EXHAUSTED, changes nothing, and
// leaves other principals alone.
TEST_F(AuthE2eTest, QuotasBoundEachPrincipal) {
  ClientOptions options;
  options.address = server_->address();
  options.token = "t-sam";
  Client sam(options);
  options.token = "t-reader";
  Client ann(options);
  v1::SubscribeRequest all;
  all.mutable_all();
  auto open_live = [&](Client& client) {
    auto caught_up = std::make_shared<absl::Notification>();
    auto subscription = client.Subscribe(all, [caught_up](const v1::SubscribeResponse& m) {
      if (m.has_caught_up() && !caught_up->HasBeenNotified()) caught_up->Notify();
      return true;
    });
    EXPECT_TRUE(caught_up->WaitForNotificationWithTimeout(absl::Seconds(30)));
    return subscription;
  };
  auto subscribe_once = [&](const std::string& token) {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = stub_->Subscribe(&ctx, all);
    v1::SubscribeResponse m;
    while (reader->Read(&m)) {
      if (m.has_caught_up()) ctx.TryCancel();  // Admitted.
    }
    return reader->Finish();
  };

  std::vector<std::unique_ptr<Subscription>> open;
  for (int i = 0; i < 10; ++i) open.push_back(open_live(sam));
  grpc::Status eleventh = subscribe_once("t-sam");
  EXPECT_EQ(eleventh.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(eleventh.error_message(),
            "quota: sam has 10 subscriptions open, its quota; close one first");
  // Another principal is not held to sam's count.
  EXPECT_EQ(subscribe_once("t-reader").error_code(), grpc::StatusCode::CANCELLED);
  auto anns = open_live(ann);
  // Once one of sam's ends, sam may open another.
  open.pop_back();
  grpc::Status again;
  for (int attempt = 0; attempt < 50; ++attempt) {
    again = subscribe_once("t-sam");
    if (again.error_code() == grpc::StatusCode::CANCELLED) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(again.error_code(), grpc::StatusCode::CANCELLED) << again.error_message();
  open.clear();

  // One consumer: a second Consume is refused before it joins.
  grpc::ClientContext first_ctx;
  Authorize(first_ctx, "t-sam");
  auto first = stub_->Consume(&first_ctx);
  v1::ConsumeRequest join;
  join.mutable_join()->set_group("g");
  join.mutable_join()->set_consumer("c1");
  ASSERT_TRUE(first->Write(join));
  v1::ConsumeResponse joined;
  ASSERT_TRUE(first->Read(&joined));
  EXPECT_TRUE(joined.has_joined()) << joined.DebugString();
  {
    grpc::ClientContext ctx;
    Authorize(ctx, "t-sam");
    auto second = stub_->Consume(&ctx);
    join.mutable_join()->set_consumer("c2");
    second->Write(join);
    second->WritesDone();
    v1::ConsumeResponse m;
    while (second->Read(&m)) {
    }
    const grpc::Status refused = second->Finish();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(refused.error_message(),
              "quota: sam has 1 consumers open, its quota; close one first");
  }
  first_ctx.TryCancel();
  while (first->Read(&joined)) {
  }
  first->Finish();

  // One append in flight: while one waits for a row lock, the next is
  // refused and stores nothing.
  pqxx::connection locker(dsn_);
  pqxx::work hold(locker);
  hold.exec("SELECT 1 FROM logbook.streams WHERE stream_id = 'orders-1' FOR UPDATE");
  absl::Status held_append;
  std::thread waiting([&] {
    held_append = sam.Append("orders-1", expect::Any(), {Event("Held")}).status();
  });
  bool blocked = false;
  for (int attempt = 0; attempt < 300 && !blocked; ++attempt) {
    blocked = testing::QueryValue(dsn_, "SELECT count(*) FROM pg_stat_activity "
                                        "WHERE wait_event_type = 'Lock'") != "0";
    if (!blocked) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(blocked);
  const absl::Status refused =
      sam.Append("payments-9", expect::Any(), {Event("Paid")}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(),
            "quota: sam has 1 appends in flight, its quota; retry once one is answered");
  hold.abort();
  waiting.join();
  EXPECT_TRUE(held_append.ok()) << held_append;
  EXPECT_EQ(testing::QueryValue(dsn_, "SELECT count(*) FROM logbook.event_log "
                                      "WHERE stream_id = 'payments-9'"),
            "0");
  EXPECT_TRUE(sam.Append("payments-9", expect::Any(), {Event("Paid")}).ok());
}

TEST_F(AuthE2eTest, TheTokensFileIsReadAgainOnSighup) {
  ClientOptions options;
  options.address = server_->address();
  options.token = "t-new";
  Client newcomer(options);
  EXPECT_EQ(newcomer.GetStream("orders-1").status().code(), absl::StatusCode::kUnauthenticated);
  auto principals = kPrincipals;
  principals["t-new"] = "nina reader - *";
  principals.erase("t-reader");
  std::ofstream(tokens_) << TokensFile(principals);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  absl::Status s;
  for (int i = 0; i < 100; ++i) {
    s = newcomer.GetStream("orders-1").status();
    if (s.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(s.ok()) << s;
  options.token = "t-reader";
  EXPECT_EQ(Client(options).GetStream("orders-1").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_NE(server_->log().find("SIGHUP: 8 principals from"), std::string::npos)
      << server_->log();
}

}  // namespace
}  // namespace logbook
