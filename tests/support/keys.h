// Test support: fresh keys: Ed25519 for signed checkpoints, RSA and P-256
// for JWTs.
#pragma once

#include <string>

namespace logbook::testing {

// A new Ed25519 key pair in PEM, as `openssl genpkey -algorithm ed25519`
// and `openssl pkey -pubout` write them.
struct PemKeyPair {
  std::string private_pem;
  std::string public_pem;
};
PemKeyPair NewEd25519Key();
PemKeyPair NewRsaKey();   // 2048 bits.
PemKeyPair NewP256Key();  // EC on P-256.

// The public half of an RSA or P-256 key as a JWK with `kid` (kty, n and e,
// or crv, x and y; base64url).
std::string PublicJwk(const PemKeyPair& key, const std::string& kid);

}  // namespace logbook::testing
