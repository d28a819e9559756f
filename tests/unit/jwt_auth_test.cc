// JWT callers: keys from PEM and JWKS files, and every check a token
// passes or fails (signature, algorithm, expiry with leeway, not-before,
// issuer, audience, the claims that make the principal), with the exact
// refusal. Tokens are signed by libjwt as an identity provider would.
#include "jwt_auth.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "jwts.h"
#include "keys.h"

namespace logbook::service {
namespace {

using testing::MintJwt;
using testing::PemKeyPair;

// 2027-01-15T08:00:00Z.
const absl::Time kNow = absl::FromUnixSeconds(1800000000);

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new PemKeyPair(testing::NewRsaKey());
    ec_ = new PemKeyPair(testing::NewP256Key());
    stranger_ = new PemKeyPair(testing::NewRsaKey());
  }

  void SetUp() override {
    absl::StatusOr<std::vector<JwtKey>> keys =
        ParseJwtKeys(rsa_->public_pem + ec_->public_pem, "keys.pem");
    ASSERT_TRUE(keys.ok()) << keys.status();
    policy_ = {*keys, "https://idp.example", "logbook"};
  }

  // Claims valid at kNow, with `extra` members ("" or `,"k":v...`).
  static std::string Claims(const std::string& extra = "", int64_t exp_offset = 300) {
    return absl::StrCat(R"({"sub":"ann","iss":"https://idp.example","aud":"logbook","exp":)",
                        1800000000 + exp_offset, extra, "}");
  }

  std::string Verify(const std::string& token) const {
    absl::StatusOr<Principal> p = VerifyJwt(token, policy_, kNow, Quotas{1, 2, 3});
    if (!p.ok()) return p.status().ToString();
    return absl::StrCat(p->name, " roles=", RoleNames(p->roles), " scopes=",
                        absl::StrJoin(p->scopes, ","), " quotas=", p->quotas.subscriptions,
                        p->quotas.consumers, p->quotas.appends_in_flight,
                        p->tenant == store::kDefaultTenant ? "" : " tenant=" + p->tenant);
  }

  static PemKeyPair* rsa_;
  static PemKeyPair* ec_;
  static PemKeyPair* stranger_;
  JwtPolicy policy_;
};
PemKeyPair* JwtTest::rsa_ = nullptr;
PemKeyPair* JwtTest::ec_ = nullptr;
PemKeyPair* JwtTest::stranger_ = nullptr;

TEST_F(JwtTest, ValidTokensOfBothAlgorithmsNameTheirPrincipal) {
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256",
                           Claims(R"(,"roles":["reader","writer"],"scopes":"orders-*, payments")"))),
            "ann roles=reader,writer scopes=orders-*,payments quotas=123");
  EXPECT_EQ(Verify(MintJwt(*ec_, "ES256", Claims(R"(,"roles":"consumer","scopes":["*"])"))),
            "ann roles=consumer scopes= quotas=123");
  // ES256 signatures are r || s, 64 bytes (RFC 7518 3.4), as identity
  // providers send them, not DER.
  const std::string es256 = MintJwt(*ec_, "ES256", Claims());
  std::string signature;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(es256.substr(es256.rfind('.') + 1), &signature));
  EXPECT_EQ(signature.size(), 64u);
  // The tenant claim: a tenant, or every tenant for an admin.
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"roles":"reader","tenant":"acme")"))),
            "ann roles=reader scopes= quotas=123 tenant=acme");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"roles":"admin","tenant":"*")"))),
            "ann roles=admin scopes= quotas=123 tenant=*");
  // Without roles a principal may do nothing, but it is who it is.
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims())), "ann roles=none scopes= quotas=123");
  // An audience list that holds ours; a tenant of '-'.
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256",
                           R"({"sub":"ann","iss":"https://idp.example","aud":["x","logbook"],)"
                           R"("exp":1800000300,"nbf":1799999990,"tenant":"-"})")),
            "ann roles=none scopes= quotas=123");
}

TEST_F(JwtTest, ExpiryAndNotBeforeAllowAMinuteOfSkew) {
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims("", -120))),
            "UNAUTHENTICATED: authorization: the JWT expired at 2027-01-15T07:58:00Z");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims("", -59))), "ann roles=none scopes= quotas=123");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"nbf":1800000120)"))),
            "UNAUTHENTICATED: authorization: the JWT is not valid before 2027-01-15T08:02:00Z");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"nbf":1800000059)"))),
            "ann roles=none scopes= quotas=123");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256",
                           R"({"sub":"ann","iss":"https://idp.example","aud":"logbook"})")),
            "UNAUTHENTICATED: authorization: the JWT has no exp (expiry)");
}

TEST_F(JwtTest, ForeignSignaturesAndAlgorithmsAreRefused) {
  EXPECT_EQ(Verify(MintJwt(*stranger_, "RS256", Claims())),
            "UNAUTHENTICATED: authorization: the JWT's signature does not verify");
  // The classic confusion: HS256 keyed with our public key, which anyone has.
  EXPECT_EQ(Verify(MintJwt(*rsa_, "HS256", Claims())),
            "UNAUTHENTICATED: authorization: JWT algorithm HS256 is not accepted (RS256 or "
            "ES256)");
  std::string header, payload;
  absl::WebSafeBase64Escape(R"({"alg":"none","typ":"JWT"})", &header);
  absl::WebSafeBase64Escape(Claims(), &payload);
  EXPECT_EQ(Verify(absl::StrCat(header, ".", payload, ".")),
            "UNAUTHENTICATED: authorization: JWT algorithm none is not accepted (RS256 or ES256)");
  // A valid token with its payload swapped for another principal's.
  const std::string good = MintJwt(*rsa_, "RS256", Claims());
  std::string forged_payload;
  absl::WebSafeBase64Escape(absl::StrCat(R"({"sub":"root","iss":"https://idp.example",)",
                                         R"("aud":"logbook","exp":1800000300})"),
                            &forged_payload);
  const size_t dot = good.find('.'), last = good.rfind('.');
  EXPECT_EQ(Verify(good.substr(0, dot + 1) + forged_payload + good.substr(last)),
            "UNAUTHENTICATED: authorization: the JWT's signature does not verify");
  EXPECT_EQ(Verify("lbk_0123"), "UNAUTHENTICATED: authorization: malformed JWT");
  EXPECT_EQ(Verify("a.b.c"), "UNAUTHENTICATED: authorization: malformed JWT");
}

TEST_F(JwtTest, IssuerAudienceAndClaimsAreChecked) {
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256",
                           R"({"sub":"ann","iss":"https://evil.example","aud":"logbook",)"
                           R"("exp":1800000300})")),
            "UNAUTHENTICATED: authorization: the JWT's issuer 'https://evil.example' is not "
            "'https://idp.example'");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256",
                           R"({"sub":"ann","iss":"https://idp.example","aud":["billing"],)"
                           R"("exp":1800000300})")),
            "UNAUTHENTICATED: authorization: the JWT's audience does not include 'logbook'");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256",
                           R"({"iss":"https://idp.example","aud":"logbook","exp":1800000300})")),
            "UNAUTHENTICATED: authorization: the JWT's sub must be 1 to 128 bytes of text "
            "without blanks");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"roles":["reader","writr"])"))),
            "UNAUTHENTICATED: authorization: the JWT's roles: 'writr' is not one of reader, "
            "writer, consumer, operator, admin");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"roles":7)"))),
            "UNAUTHENTICATED: authorization: the JWT's roles claim is not a list of role names");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"scopes":["order-1"])"))),
            "UNAUTHENTICATED: authorization: the JWT's scopes: 'order-1' is neither a prefix "
            "ending in '*' (orders-*) nor a category (payments)");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"tenant":"ac me")"))),
            "UNAUTHENTICATED: authorization: the JWT's tenant: tenant 'ac me' has ' ' at byte 2; "
            "a tenant is [A-Za-z0-9._-], starting with a letter or digit");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"tenant":7)"))),
            "UNAUTHENTICATED: authorization: the JWT's tenant claim is not a string");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(R"(,"roles":"reader","tenant":"*")"))),
            "UNAUTHENTICATED: authorization: the JWT's tenant: '*' (every tenant) is for "
            "principals with the admin role");
}

TEST_F(JwtTest, AJwksFileGivesKeysByKid) {
  const std::string jwks =
      absl::StrCat(R"({"keys":[)", testing::PublicJwk(*rsa_, "r1"), ",",
                   testing::PublicJwk(*ec_, "e1"), R"(,{"kty":"RSA","use":"enc","n":"AQAB",)",
                   R"("e":"AQAB","kid":"skipped"}]})");
  absl::StatusOr<std::vector<JwtKey>> keys = ParseJwtKeys(jwks, "jwks.json");
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 2u);  // The encryption key is left out.
  EXPECT_EQ((*keys)[0].kid, "r1");
  EXPECT_EQ((*keys)[0].pem, rsa_->public_pem);  // The same key, from n and e.
  EXPECT_EQ((*keys)[1].algorithm, JwtAlgorithm::kEs256);
  EXPECT_EQ((*keys)[1].pem, ec_->public_pem);  // From x and y.
  policy_.keys = *keys;
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(), "r1")), "ann roles=none scopes= quotas=123");
  EXPECT_EQ(Verify(MintJwt(*ec_, "ES256", Claims(), "e1")), "ann roles=none scopes= quotas=123");
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(), "r2")),
            "UNAUTHENTICATED: authorization: no RS256 key has kid 'r2'");
  // A kid naming the other algorithm's key does not make it verify.
  EXPECT_EQ(Verify(MintJwt(*rsa_, "RS256", Claims(), "e1")),
            "UNAUTHENTICATED: authorization: no RS256 key has kid 'e1'");
}

TEST_F(JwtTest, BadKeyFilesAreNamed) {
  EXPECT_EQ(ParseJwtKeys("", "k.pem").status().ToString(),
            "INVALID_ARGUMENT: JWT keys k.pem: holds no public key (expected PEM 'BEGIN PUBLIC "
            "KEY' blocks or a JWKS document)");
  EXPECT_EQ(ParseJwtKeys(testing::NewEd25519Key().public_pem, "k.pem").status().ToString(),
            "INVALID_ARGUMENT: JWT keys k.pem: key 1 is neither RSA (RS256) nor EC on P-256 "
            "(ES256)");
  EXPECT_EQ(ParseJwtKeys(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})", "k.json")
                .status()
                .ToString(),
            "INVALID_ARGUMENT: JWT keys k.json: keys[0]: kty 'oct' is not RSA or EC");
  EXPECT_EQ(ParseJwtKeys(R"({"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]})", "k.json")
                .status()
                .ToString(),
            "INVALID_ARGUMENT: JWT keys k.json: keys[0]: EC keys must be on crv P-256 (ES256)");
  EXPECT_EQ(ParseJwtKeys(absl::StrCat(R"({"keys":[)",
                                      testing::PublicJwk(*rsa_, "r1").replace(
                                          testing::PublicJwk(*rsa_, "r1").find("RS256"), 5,
                                          "ES256"),
                                      "]}"),
                         "k.json")
                .status()
                .ToString(),
            "INVALID_ARGUMENT: JWT keys k.json: keys[0]: alg 'ES256' is not what its key "
            "verifies (RS256 for RSA, ES256 for EC P-256)");
  EXPECT_EQ(ParseJwtKeys("{not json", "k.json").status().ToString(),
            "INVALID_ARGUMENT: JWT keys k.json: not a JWKS document ({\"keys\": [...]})");
}

TEST(Jwt, LooksLikeJwtWantsThreeBase64UrlParts) {
  EXPECT_TRUE(LooksLikeJwt("eyJh.eyJz.c2ln"));
  EXPECT_TRUE(LooksLikeJwt("eyJh.eyJz."));
  EXPECT_FALSE(LooksLikeJwt("lbk_0123abcd"));
  EXPECT_FALSE(LooksLikeJwt("eyJh.eyJz"));
  EXPECT_FALSE(LooksLikeJwt("eyJh.ey+z.c2ln"));
  EXPECT_FALSE(LooksLikeJwt(".eyJz.c2ln"));
}

}  // namespace
}  // namespace logbook::service
