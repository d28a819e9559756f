// Test support: fresh Ed25519 keys for signed checkpoints.
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

}  // namespace logbook::testing
