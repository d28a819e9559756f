#include "jwt_auth.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "logbook/store/limits.h"

namespace logbook::service {
namespace {

using json = nlohmann::json;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using Jwt = std::unique_ptr<jwt_t, JwtFree>;

const char* AlgorithmName(JwtAlgorithm a) { return a == JwtAlgorithm::kRs256 ? "RS256" : "ES256"; }

absl::Status Unauthenticated(absl::string_view what) {
  return absl::UnauthenticatedError(absl::StrCat("authorization: ", what));
}

// The algorithm a public key verifies: RS256 for RSA, ES256 for EC on
// P-256; nullopt for anything else.
std::optional<JwtAlgorithm> AlgorithmOf(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) return JwtAlgorithm::kRs256;
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &length) == 1 &&
        absl::string_view(group, length) == "prime256v1") {
      return JwtAlgorithm::kEs256;
    }
  }
  return std::nullopt;
}

std::string PemOf(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (bio != nullptr && PEM_write_bio_PUBKEY(bio, key) == 1) {
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<size_t>(length));
  }
  BIO_free(bio);
  return pem;
}

// base64url without padding, as JWK members are.
std::optional<std::string> Base64Url(const json& member) {
  if (!member.is_string()) return std::nullopt;
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(member.get<std::string>(), &bytes) || bytes.empty()) {
    return std::nullopt;
  }
  return bytes;
}

// An RSA or P-256 public key from a JWK; nullptr with `why` set otherwise.
Pkey KeyFromJwk(const json& jwk, std::string& why) {
  const std::string kty = jwk.value("kty", "");
  OSSL_PARAM_BLD* build = OSSL_PARAM_BLD_new();
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  std::string point;
  const char* type = nullptr;
  if (kty == "RSA") {
    const auto modulus = Base64Url(jwk.value("n", json())),
               exponent = Base64Url(jwk.value("e", json()));
    if (!modulus || !exponent) {
      why = "RSA needs base64url n and e";
    } else {
      n = BN_bin2bn(reinterpret_cast<const unsigned char*>(modulus->data()),
                    static_cast<int>(modulus->size()), nullptr);
      e = BN_bin2bn(reinterpret_cast<const unsigned char*>(exponent->data()),
                    static_cast<int>(exponent->size()), nullptr);
      OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_N, n);
      OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_E, e);
      type = "RSA";
    }
  } else if (kty == "EC") {
    const auto x = Base64Url(jwk.value("x", json())), y = Base64Url(jwk.value("y", json()));
    if (jwk.value("crv", "") != "P-256") {
      why = "EC keys must be on crv P-256 (ES256)";
    } else if (!x || !y || x->size() != 32 || y->size() != 32) {
      why = "EC needs base64url x and y of 32 bytes each";
    } else {
      point = "\x04" + *x + *y;  // Uncompressed.
      OSSL_PARAM_BLD_push_utf8_string(build, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
      OSSL_PARAM_BLD_push_octet_string(build, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size());
      type = "EC";
    }
  } else {
    why = absl::StrCat("kty '", kty, "' is not RSA or EC");
  }
  EVP_PKEY* key = nullptr;
  if (type != nullptr) {
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(build);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
      why = "OpenSSL does not accept it as a public key";
      key = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
  }
  BN_free(n);
  BN_free(e);
  OSSL_PARAM_BLD_free(build);
  return Pkey(key);
}

absl::StatusOr<std::vector<JwtKey>> ParseJwks(absl::string_view text, absl::string_view path) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys") ||
      !doc["keys"].is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("JWT keys ", path, ": not a JWKS document ({\"keys\": [...]})"));
  }
  std::vector<JwtKey> keys;
  for (size_t i = 0; i < doc["keys"].size(); ++i) {
    const json& jwk = doc["keys"][i];
    if (!jwk.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("JWT keys ", path, ": keys[", i, "] is not an object"));
    }
    if (jwk.value("use", "sig") != "sig") continue;  // An encryption key.
    std::string why;
    Pkey key = KeyFromJwk(jwk, why);
    std::optional<JwtAlgorithm> algorithm = key ? AlgorithmOf(key.get()) : std::nullopt;
    const std::string alg = jwk.value("alg", "");
    if (key && !alg.empty() && (!algorithm || alg != AlgorithmName(*algorithm))) {
      why = absl::StrCat("alg '", alg, "' is not what its key verifies (RS256 for RSA, ES256 "
                         "for EC P-256)");
      key.reset();
    }
    if (!key) {
      return absl::InvalidArgumentError(
          absl::StrCat("JWT keys ", path, ": keys[", i, "]: ", why));
    }
    keys.push_back({jwk.value("kid", ""), *algorithm, PemOf(key.get())});
  }
  return keys;
}

// A claim that lists names: an array of strings, or one string of names
// separated by commas or blanks. nullopt when it is something else.
std::optional<std::vector<std::string>> NameList(const json& claim) {
  std::vector<std::string> names;
  if (claim.is_string()) {
    for (absl::string_view n : absl::StrSplit(claim.get<std::string>(),
                                              absl::ByAnyChar(", \t"), absl::SkipEmpty())) {
      names.emplace_back(n);
    }
    return names;
  }
  if (!claim.is_array()) return std::nullopt;
  for (const json& n : claim) {
    if (!n.is_string()) return std::nullopt;
    names.push_back(n.get<std::string>());
  }
  return names;
}

std::string Rfc3339(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<std::vector<JwtKey>> ParseJwtKeys(absl::string_view text,
                                                 absl::string_view path) {
  const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(text);
  std::vector<JwtKey> keys;
  if (absl::StartsWith(trimmed, "{")) {
    absl::StatusOr<std::vector<JwtKey>> jwks = ParseJwks(trimmed, path);
    if (!jwks.ok()) return jwks.status();
    keys = *std::move(jwks);
  } else {
    BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
    for (int i = 0;; ++i) {
      Pkey key(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
      if (!key) break;
      const std::optional<JwtAlgorithm> algorithm = AlgorithmOf(key.get());
      if (!algorithm) {
        BIO_free(bio);
        return absl::InvalidArgumentError(
            absl::StrCat("JWT keys ", path, ": key ", i + 1,
                         " is neither RSA (RS256) nor EC on P-256 (ES256)"));
      }
      keys.push_back({"", *algorithm, PemOf(key.get())});
    }
    BIO_free(bio);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "JWT keys ", path,
        ": holds no public key (expected PEM 'BEGIN PUBLIC KEY' blocks or a JWKS document)"));
  }
  return keys;
}

bool LooksLikeJwt(absl::string_view token) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) return false;
  for (absl::string_view part : parts) {
    for (char c : part) {
      if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
    }
  }
  return true;
}

absl::StatusOr<Principal> VerifyJwt(absl::string_view token, const JwtPolicy& policy,
                                    absl::Time now, const Quotas& quotas) {
  if (!LooksLikeJwt(token)) return Unauthenticated("malformed JWT");
  const std::string text(token);
  // The header, unverified, only to choose the key: nothing of it is
  // trusted until a key this server holds verifies the signature.
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), nullptr, 0) != 0) return Unauthenticated("malformed JWT");
  Jwt unverified(raw);
  // (libjwt reports the algorithm of a token decoded without a key as none:
  // the header's is the one it asks for.)
  const char* alg_header = jwt_get_header(unverified.get(), "alg");
  const jwt_alg_t alg = alg_header == nullptr ? JWT_ALG_NONE : jwt_str_alg(alg_header);
  std::optional<JwtAlgorithm> algorithm;
  if (alg == JWT_ALG_RS256) algorithm = JwtAlgorithm::kRs256;
  if (alg == JWT_ALG_ES256) algorithm = JwtAlgorithm::kEs256;
  if (!algorithm) {
    return Unauthenticated(absl::StrCat("JWT algorithm ", jwt_alg_str(alg),
                                        " is not accepted (RS256 or ES256)"));
  }
  const char* kid_header = jwt_get_header(unverified.get(), "kid");
  const std::string kid = kid_header == nullptr ? "" : kid_header;

  Jwt verified;
  bool candidate = false;
  for (const JwtKey& key : policy.keys) {
    if (key.algorithm != *algorithm || (!key.kid.empty() && !kid.empty() && key.kid != kid)) {
      continue;
    }
    candidate = true;
    raw = nullptr;
    if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(key.pem.data()),
                   static_cast<int>(key.pem.size())) == 0 &&
        raw != nullptr && jwt_get_alg(raw) == alg) {
      verified.reset(raw);
      break;
    }
    jwt_free(raw);
  }
  if (!candidate) {
    return Unauthenticated(kid.empty()
                               ? absl::StrCat("no ", AlgorithmName(*algorithm),
                                              " key to verify the JWT")
                               : absl::StrCat("no ", AlgorithmName(*algorithm), " key has kid '",
                                              kid, "'"));
  }
  if (!verified) return Unauthenticated("the JWT's signature does not verify");

  char* all = jwt_get_grants_json(verified.get(), nullptr);
  const json claims = json::parse(all == nullptr ? "" : all, nullptr, false);
  std::free(all);
  if (!claims.is_object()) return Unauthenticated("the JWT's claims are not a JSON object");

  const int64_t seconds = absl::ToUnixSeconds(now);
  const int64_t leeway = absl::ToInt64Seconds(kJwtLeeway);
  if (!claims.contains("exp") || !claims["exp"].is_number()) {
    return Unauthenticated("the JWT has no exp (expiry)");
  }
  const int64_t exp = claims["exp"].get<int64_t>();
  if (seconds > exp + leeway) {
    return Unauthenticated(absl::StrCat("the JWT expired at ", Rfc3339(exp)));
  }
  if (claims.contains("nbf")) {
    if (!claims["nbf"].is_number()) return Unauthenticated("the JWT's nbf is not a number");
    const int64_t nbf = claims["nbf"].get<int64_t>();
    if (seconds + leeway < nbf) {
      return Unauthenticated(absl::StrCat("the JWT is not valid before ", Rfc3339(nbf)));
    }
  }
  const std::string iss = claims.value("iss", json()).is_string() ? claims["iss"].get<std::string>()
                                                                  : std::string();
  if (iss != policy.issuer) {
    return Unauthenticated(
        absl::StrCat("the JWT's issuer '", iss, "' is not '", policy.issuer, "'"));
  }
  const json aud = claims.value("aud", json());
  bool audience = aud.is_string() && aud.get<std::string>() == policy.audience;
  if (aud.is_array()) {
    for (const json& a : aud) audience = audience || (a.is_string() && a == policy.audience);
  }
  if (!audience) {
    return Unauthenticated(absl::StrCat("the JWT's audience does not include '",
                                        policy.audience, "'"));
  }

  Principal p;
  p.quotas = quotas;
  p.name = claims.value("sub", json()).is_string() ? claims["sub"].get<std::string>() : "";
  if (!store::ValidateText("sub", p.name, 1, 128).ok() ||
      p.name.find(' ') != std::string::npos) {
    return Unauthenticated("the JWT's sub must be 1 to 128 bytes of text without blanks");
  }
  if (claims.contains("roles")) {
    const std::optional<std::vector<std::string>> roles = NameList(claims["roles"]);
    if (!roles) return Unauthenticated("the JWT's roles claim is not a list of role names");
    for (const std::string& role : *roles) {
      absl::StatusOr<uint32_t> bit = RoleBit(role);
      if (!bit.ok()) return Unauthenticated(absl::StrCat("the JWT's roles: ", bit.status().message()));
      p.roles |= *bit;
    }
  }
  if (claims.contains("scopes")) {
    const std::optional<std::vector<std::string>> scopes = NameList(claims["scopes"]);
    if (!scopes) return Unauthenticated("the JWT's scopes claim is not a list of scopes");
    bool every_stream = false;
    for (const std::string& scope : *scopes) {
      if (scope == "*") {
        every_stream = true;
        continue;
      }
      if (absl::Status valid = ValidateScope(scope); !valid.ok()) {
        return Unauthenticated(absl::StrCat("the JWT's scopes: ", valid.message()));
      }
      p.scopes.push_back(scope);
    }
    if (every_stream) p.scopes.clear();
  }
  const json tenant = claims.value("tenant", json());
  if (!tenant.is_null()) {
    if (!tenant.is_string()) return Unauthenticated("the JWT's tenant claim is not a string");
    absl::StatusOr<std::string> named = TenantField(tenant.get<std::string>(), p.roles);
    if (!named.ok()) return Unauthenticated(absl::StrCat("the JWT's ", named.status().message()));
    p.tenant = *std::move(named);
  }
  return p;
}

}  // namespace logbook::service
