#include "jwts.h"

#include <jwt.h>

#include <cstdlib>
#include <iostream>

namespace logbook::testing {

std::string MintJwt(const PemKeyPair& key, const std::string& alg, const std::string& claims,
                    const std::string& kid) {
  jwt_t* jwt = nullptr;
  const std::string& secret = alg == "HS256" ? key.public_pem : key.private_pem;
  std::string token;
  if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims.c_str()) == 0 &&
      (kid.empty() || jwt_add_header(jwt, "kid", kid.c_str()) == 0) &&
      jwt_set_alg(jwt, jwt_str_alg(alg.c_str()),
                  reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) == 0) {
    char* encoded = jwt_encode_str(jwt);
    if (encoded != nullptr) token = encoded;
    std::free(encoded);
  }
  jwt_free(jwt);
  if (token.empty()) {
    std::cerr << "MintJwt: libjwt cannot sign " << claims << " with " << alg << "\n";
    std::abort();
  }
  return token;
}

}  // namespace logbook::testing
