// Who is calling and what they may do (service/src/auth.h): the tokens
// file, roles, stream scopes and the filters scoped reads run with.
#include "auth.h"

#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace logbook::service {
namespace {

// SHA-256 of "secret-1", as `logbook auth token create` would write it.
constexpr char kDigest1[] = "a9c4ec1c3d1e9b79f6e1f7ae8e45c2fc2d2a2b4d4bd8f8b4bcb0b36f0e3ce6f0";

std::string Line(const std::string& digest, const std::string& rest) {
  return absl::StrCat(digest, " ", rest, "\n");
}

Principal Scoped(std::vector<std::string> scopes) {
  return Principal{"billing", kReader, std::move(scopes), false};
}

std::string Describe(const absl::StatusOr<store::EventFilter>& f) {
  if (!f.ok()) return f.status().ToString();
  return absl::StrCat("category=", f->category, " prefix=", f->stream_prefix,
                      " stream=", f->stream_id,
                      f->scopes.empty() ? "" : " scopes=", absl::StrJoin(f->scopes, ","));
}

TEST(Auth, TokenDigestIsLowercaseHexSha256) {
  EXPECT_EQ(TokenDigest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Auth, ATokensFileNamesPrincipalsByDigestOrCertificate) {
  const std::string text =
      "# credential  principal  roles  tenant  scopes\n"
      "\n" +
      Line(TokenDigest("secret-1"), "billing reader,writer - orders-*,payments  # trailing") +
      Line("cert:worker-1.internal", "worker-1 consumer - *");
  absl::StatusOr<TokenTable> table = ParseTokensFile(text, "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->size(), 2u);
  const Principal& billing = table->at(TokenDigest("secret-1"));
  EXPECT_EQ(billing.name, "billing");
  EXPECT_EQ(billing.roles, kReader | kWriter);
  EXPECT_EQ(billing.scopes, (std::vector<std::string>{"orders-*", "payments"}));
  const Principal& worker = table->at("cert:worker-1.internal");
  EXPECT_EQ(worker.roles, kConsumer);
  EXPECT_TRUE(worker.scopes.empty());
  EXPECT_EQ(RoleNames(kReader | kOperator), "reader,operator");
  EXPECT_EQ(RoleNames(0), "none");
}

// The tenant field: '-' the default tenant, a name, or '*' for an admin
// of every tenant, who names one per call.
TEST(Auth, APrincipalBelongsToOneTenantOrToEvery) {
  const std::string text = Line(TokenDigest("t-1"), "ann reader - *") +
                           Line(TokenDigest("t-2"), "bob reader,writer acme *") +
                           Line(TokenDigest("t-3"), "root admin * *");
  absl::StatusOr<TokenTable> table = ParseTokensFile(text, "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  const Principal& ann = table->at(TokenDigest("t-1"));
  const Principal& bob = table->at(TokenDigest("t-2"));
  const Principal& root = table->at(TokenDigest("t-3"));
  EXPECT_EQ(ann.tenant, "default");
  EXPECT_EQ(bob.tenant, "acme");
  EXPECT_EQ(root.tenant, "*");

  EXPECT_EQ(CallTenant(ann, std::nullopt).value(), "default");
  EXPECT_EQ(CallTenant(bob, std::nullopt).value(), "acme");
  EXPECT_EQ(CallTenant(bob, "acme").value(), "acme");
  EXPECT_EQ(CallTenant(bob, "globex").status(),
            absl::PermissionDeniedError("principal 'bob' belongs to tenant 'acme', not 'globex'"));
  EXPECT_EQ(CallTenant(ann, "acme").status(),
            absl::PermissionDeniedError("principal 'ann' belongs to tenant 'default', not 'acme'"));
  EXPECT_EQ(CallTenant(root, std::nullopt).value(), "default");
  EXPECT_EQ(CallTenant(root, "globex").value(), "globex");
  EXPECT_EQ(CallTenant(root, "*").status(),
            absl::InvalidArgumentError("logbook-tenant metadata: tenant '*' has '*' at byte 0; a "
                                       "tenant is [A-Za-z0-9._-], starting with a letter or digit"));

  Principal acting = bob;
  EXPECT_EQ(AsWriter(acting).tenant, "acme");
  EXPECT_EQ(AsWriter(acting).principal, "bob");
}

// A line's quotas override the defaults field by field; '-' or no field
// keeps them.
TEST(Auth, QuotasComeFromTheLineOrTheDefaults) {
  const std::string text =
      Line(TokenDigest("a"), "ann reader - * subscriptions=10,appends=0") +
      Line(TokenDigest("b"), "bob reader - * -") + Line(TokenDigest("c"), "cy reader - *");
  absl::StatusOr<TokenTable> table =
      ParseTokensFile(text, "tokens", Quotas{5, 6, 7});
  ASSERT_TRUE(table.ok()) << table.status();
  const Quotas& ann = table->at(TokenDigest("a")).quotas;
  EXPECT_EQ(ann.subscriptions, 10u);
  EXPECT_EQ(ann.consumers, 6u);
  EXPECT_EQ(ann.appends_in_flight, 0u);
  for (const char* other : {"b", "c"}) {
    const Quotas& q = table->at(TokenDigest(other)).quotas;
    EXPECT_EQ(q.subscriptions, 5u);
    EXPECT_EQ(q.consumers, 6u);
    EXPECT_EQ(q.appends_in_flight, 7u);
  }
}

TEST(Auth, ABadTokensFileNamesTheLineAndField) {
  auto error = [](const std::string& text) {
    return ParseTokensFile(text, "/etc/logbook/tokens").status().ToString();
  };
  EXPECT_EQ(error("# ok\n" + Line(kDigest1, "billing reader -")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 2: expected 5 or 6 fields "
            "(credential, principal, roles, tenant, scopes, optional quotas), not 4");
  EXPECT_EQ(error(Line(kDigest1, "billing reader - * subscriptions=1 x")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: expected 5 or 6 fields "
            "(credential, principal, roles, tenant, scopes, optional quotas), not 7");
  for (const char* quota : {"subs=1", "consumers=-1", "appends=", "appends=1000001",
                            "subscriptions"}) {
    EXPECT_EQ(error(Line(kDigest1, absl::StrCat("billing reader - * ", quota))),
              absl::StrCat("INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: quotas: '",
                           quota,
                           "' is not subscriptions=N, consumers=N or appends=N (N from 0, no "
                           "limit, to 1000000)"));
  }
  EXPECT_EQ(error(Line("lbk_0123", "billing reader - *")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: credential: expected the "
            "64 hex digits of a token's SHA-256 or cert:NAME (a token itself never goes in this "
            "file)");
  EXPECT_EQ(error(Line(kDigest1, "billing reader,writr - *")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: roles: 'writr' is not one "
            "of reader, writer, consumer, operator, admin");
  EXPECT_EQ(error(Line(kDigest1, "billing reader ac/me *")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: tenant: tenant 'ac/me' has "
            "'/' at byte 2; a tenant is [A-Za-z0-9._-], starting with a letter or digit");
  EXPECT_EQ(error(Line(kDigest1, "billing reader,operator * *")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: tenant: '*' (every "
            "tenant) is for principals with the admin role");
  EXPECT_EQ(error(Line(kDigest1, "billing reader - order-1")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: scopes: 'order-1' is "
            "neither a prefix ending in '*' (orders-*) nor a category (payments)");
  EXPECT_EQ(error(Line(kDigest1, "bill$ reader - *")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 1: principal: 1 to 128 bytes "
            "of letters, digits and . _ - @ : = /");
  EXPECT_EQ(error(Line(kDigest1, "a reader - *") + Line(kDigest1, "b writer - *")),
            "INVALID_ARGUMENT: tokens file /etc/logbook/tokens line 2: this credential is on an "
            "earlier line too");
}

TEST(Auth, TheBearerSchemeIsRequired) {
  EXPECT_EQ(*BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(*BearerToken("bearer  abc "), "abc");
  EXPECT_EQ(BearerToken("Basic abc").status().ToString(),
            "UNAUTHENTICATED: authorization: expected 'Bearer <token>' (the Bearer scheme)");
  EXPECT_EQ(BearerToken("Bearer   ").status().ToString(),
            "UNAUTHENTICATED: authorization: the token is empty");
}

TEST(Auth, RolesAreCheckedAndAdminHoldsThemAll) {
  const Principal reader{"ann", kReader, {}, false};
  EXPECT_TRUE(RequireRole(reader, kReader, "ReadAll").ok());
  EXPECT_EQ(RequireRole(reader, kWriter, "Append").ToString(),
            "PERMISSION_DENIED: Append needs the role writer; ann has reader");
  EXPECT_EQ(RequireRole(reader, kConsumer | kOperator, "GetConsumerGroup").ok(), false);
  EXPECT_EQ(RequireRole(reader, kConsumer | kOperator, "X").ToString(),
            "PERMISSION_DENIED: X needs the role consumer or operator; ann has reader");
  const Principal admin{"root", kAdmin, {}, false};
  EXPECT_TRUE(RequireRole(admin, kWriter, "Append").ok());
}

TEST(Auth, ScopesCoverPrefixesAndCategories) {
  EXPECT_TRUE(store::ScopeCovers("orders-*", "orders-1"));
  EXPECT_FALSE(store::ScopeCovers("orders-*", "orders"));
  EXPECT_TRUE(store::ScopeCovers("payments", "payments"));
  EXPECT_TRUE(store::ScopeCovers("payments", "payments-7-a"));
  EXPECT_FALSE(store::ScopeCovers("payments", "paymentsx-1"));
  const Principal p = Scoped({"orders-*", "payments"});
  EXPECT_TRUE(RequireStreamScope(p, "stream_id", "payments-3").ok());
  EXPECT_EQ(RequireStreamScope(p, "stream_id", "users-1").ToString(),
            "PERMISSION_DENIED: stream_id: stream 'users-1' is outside the scopes of billing "
            "(orders-*, payments)");
  EXPECT_TRUE(RequireStreamScope(Scoped({}), "stream_id", "users-1").ok());
}

TEST(Auth, ScopedReadsAreNarrowedToTheirScope) {
  const Principal one = Scoped({"payments"});
  EXPECT_EQ(Describe(NarrowToScopes(one, {})), "category=payments prefix= stream=");
  store::EventFilter prefixed;
  prefixed.stream_prefix = "payments-eu";
  EXPECT_EQ(Describe(NarrowToScopes(one, prefixed)),
            "category=payments prefix=payments-eu stream=");
  store::EventFilter other;
  other.category = "users";
  EXPECT_EQ(Describe(NarrowToScopes(one, other)),
            "PERMISSION_DENIED: filter: reads nothing within the scopes of billing (payments)");

  const Principal two = Scoped({"orders-*", "payments"});
  // Overlapping both: bound to streams within either.
  EXPECT_EQ(Describe(NarrowToScopes(two, {})), "category= prefix= stream= scopes=orders-*,payments");
  store::EventFilter placed;
  placed.event_types = {"Placed"};
  EXPECT_EQ(Describe(NarrowToScopes(two, placed)),
            "category= prefix= stream= scopes=orders-*,payments");
  store::EventFilter o_or_p;
  o_or_p.stream_prefix = "p";  // Overlaps payments only.
  EXPECT_EQ(Describe(NarrowToScopes(two, o_or_p)), "category=payments prefix=p stream=");
  const Principal three = Scoped({"orders-*", "payments", "pay-*"});
  EXPECT_EQ(Describe(NarrowToScopes(three, o_or_p)),
            "category= prefix=p stream= scopes=payments,pay-*");
  store::EventFilter orders;
  orders.category = "orders";
  EXPECT_EQ(Describe(NarrowToScopes(two, orders)), "category=orders prefix=orders- stream=");
  store::EventFilter ord;
  ord.stream_prefix = "ord";
  EXPECT_EQ(Describe(NarrowToScopes(two, ord)), "category= prefix=orders- stream=");
  store::EventFilter eu;
  eu.stream_prefix = "orders-eu-";
  EXPECT_EQ(Describe(NarrowToScopes(two, eu)), "category= prefix=orders-eu- stream=");
  EXPECT_TRUE(RequireWithinScopes(two, "target", eu).ok());
  EXPECT_EQ(RequireWithinScopes(two, "target", orders).ToString(),
            "PERMISSION_DENIED: target: reaches beyond the scopes of billing (orders-*, "
            "payments)");
  EXPECT_EQ(RequireWithinScopes(two, "all", {}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(RequireWithinScopes(Scoped({}), "all", {}).ok());
}

TEST(Auth, AnAuthenticatorFindsTheCallerOrSaysWhyNot) {
  const std::string path = ::testing::TempDir() + "/auth_test_tokens";
  {
    std::ofstream out(path);
    out << Line(TokenDigest("secret-1"), "billing reader,writer - payments")
        << Line("cert:worker-1", "worker-1 consumer - *");
  }
  Authenticator::Options options;
  options.tokens_file = path;
  options.admin_token = "admin-secret";
  auto auth = Authenticator::Create(options);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE((*auth)->required());
  absl::StatusOr<Principal> p = (*auth)->Authenticate("Bearer secret-1", {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "billing");
  EXPECT_EQ((*auth)->Authenticate("Bearer admin-secret", {})->roles, kAllRoles);
  EXPECT_EQ((*auth)->Authenticate(std::nullopt, {"x", "worker-1"})->name, "worker-1");
  EXPECT_EQ((*auth)->Authenticate("Bearer secret-2", {}).status().ToString(),
            "UNAUTHENTICATED: authorization: unknown token");
  EXPECT_EQ((*auth)->Authenticate(std::nullopt, {}).status().ToString(),
            "UNAUTHENTICATED: this server requires authentication: send the metadata "
            "'authorization: Bearer <token>' or a client certificate");
  EXPECT_EQ((*auth)->Authenticate(std::nullopt, {"stranger"}).status().ToString(),
            "UNAUTHENTICATED: the client certificate (stranger) names no principal of the "
            "tokens file, and the call has no token");

  // Reloading: a bad file keeps what there was; a good one replaces it.
  {
    std::ofstream out(path);
    out << "broken\n";
  }
  EXPECT_EQ((*auth)->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*auth)->Authenticate("Bearer secret-1", {}).ok());
  {
    std::ofstream out(path);
    out << Line(TokenDigest("secret-2"), "ops operator - *");
  }
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_EQ((*auth)->size(), 1u);
  EXPECT_EQ((*auth)->Authenticate("Bearer secret-1", {}).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*auth)->Authenticate("Bearer secret-2", {})->name, "ops");

  // Without a tokens file, a caller without a token is anonymous.
  auto open = Authenticator::Create(Authenticator::Options());
  ASSERT_TRUE(open.ok());
  absl::StatusOr<Principal> anonymous = (*open)->Authenticate(std::nullopt, {});
  ASSERT_TRUE(anonymous.ok());
  EXPECT_TRUE(anonymous->anonymous);
  EXPECT_EQ(RoleNames(anonymous->roles), "reader,writer,consumer,operator");
  EXPECT_EQ((*open)->Authenticate("Bearer guess", {}).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace logbook::service
