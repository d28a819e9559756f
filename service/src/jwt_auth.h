// JWT callers (docs/security.md): a bearer token that is a JWS signed with
// RS256 or ES256 by a key logbookd trusts (--auth-jwt-key: PEM public keys
// or a JWKS file). Signatures are checked by libjwt; which algorithm and key
// may check them is decided here, before libjwt sees the token, so a token
// cannot pick HS256 and have a public key used as its HMAC secret.
//
// The claims: `sub` is the principal; `roles` (an array, or a string of
// names separated by commas or blanks) and `scopes` (the same) as in the
// tokens file; `tenant` as the tokens file's field (TenantField; absent:
// the default tenant). `iss`
// must be the configured issuer, `aud` (a string or an array) must hold the
// configured audience, `exp` is required and `nbf` honoured, each with
// kJwtLeeway of clock skew allowed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "auth.h"

namespace logbook::service {

inline constexpr absl::Duration kJwtLeeway = absl::Seconds(60);

enum class JwtAlgorithm { kRs256, kEs256 };

// A public key that may verify tokens.
struct JwtKey {
  std::string kid;  // Empty: any token of its algorithm (a PEM file's keys).
  JwtAlgorithm algorithm = JwtAlgorithm::kRs256;
  std::string pem;  // SubjectPublicKeyInfo, PEM.
};

// The keys of a --auth-jwt-key file: one or more PEM public keys (RSA, or
// EC on P-256), or a JWKS document ({"keys": [...]}, kty RSA or EC P-256,
// keys with "use" other than "sig" skipped). INVALID_ARGUMENT naming `path`
// and the key otherwise. Pure.
absl::StatusOr<std::vector<JwtKey>> ParseJwtKeys(absl::string_view text, absl::string_view path);

struct JwtPolicy {
  std::vector<JwtKey> keys;
  std::string issuer;
  std::string audience;
};

// Whether `token` has the form of a JWS (three base64url parts, dots
// between). Pure.
bool LooksLikeJwt(absl::string_view token);

// The principal `token` names, verified against `policy` at time `now`;
// UNAUTHENTICATED saying what is wrong (never echoing the token). Its
// quotas are `quotas`. Pure.
absl::StatusOr<Principal> VerifyJwt(absl::string_view token, const JwtPolicy& policy,
                                    absl::Time now, const Quotas& quotas);

}  // namespace logbook::service
