// Test support: JWTs signed as an identity provider would sign them
// (libjwt), to test logbookd's verification.
#pragma once

#include <string>

#include "keys.h"

namespace logbook::testing {

// A compact JWS over `claims` (a JSON object), signed with `key`'s private
// half by `alg` ("RS256", "ES256", or "HS256" with the key's public PEM as
// the secret, as a forger would), with header kid `kid` unless empty.
std::string MintJwt(const PemKeyPair& key, const std::string& alg, const std::string& claims,
                    const std::string& kid = "");

}  // namespace logbook::testing
