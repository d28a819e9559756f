#include "keys.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <iostream>

namespace logbook::testing {
namespace {

std::string ToPem(EVP_PKEY* key, bool private_key) {
  BIO* bio = BIO_new(BIO_s_mem());
  const int written = private_key
                          ? PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr)
                          : PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem = written == 1 ? std::string(data, static_cast<size_t>(size)) : "";
  BIO_free(bio);
  return pem;
}

}  // namespace

PemKeyPair NewEd25519Key() {
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &key) != 1) {
    std::cerr << "NewEd25519Key: OpenSSL cannot make an Ed25519 key\n";
    std::abort();
  }
  EVP_PKEY_CTX_free(ctx);
  PemKeyPair pair{ToPem(key, true), ToPem(key, false)};
  EVP_PKEY_free(key);
  return pair;
}

}  // namespace logbook::testing
