#include "keys.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

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

PemKeyPair Pair(EVP_PKEY* key, const char* what) {
  if (key == nullptr) {
    std::cerr << "keys: OpenSSL cannot make " << what << "\n";
    std::abort();
  }
  PemKeyPair pair{ToPem(key, true), ToPem(key, false)};
  EVP_PKEY_free(key);
  return pair;
}

std::string Base64Url(const unsigned char* bytes, size_t size) {
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<const char*>(bytes), size), &out);
  return out;
}

std::string BnBase64Url(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(key, name, &bn);
  std::string bytes(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(bn);
  return Base64Url(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

}  // namespace

PemKeyPair NewRsaKey() { return Pair(EVP_RSA_gen(2048), "an RSA key"); }

PemKeyPair NewP256Key() { return Pair(EVP_EC_gen("P-256"), "a P-256 key"); }

std::string PublicJwk(const PemKeyPair& pair, const std::string& kid) {
  BIO* bio = BIO_new_mem_buf(pair.public_pem.data(), static_cast<int>(pair.public_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  std::string jwk;
  if (EVP_PKEY_is_a(key, "RSA")) {
    jwk = absl::StrCat(R"({"kty":"RSA","use":"sig","alg":"RS256","kid":")", kid, R"(","n":")",
                       BnBase64Url(key, OSSL_PKEY_PARAM_RSA_N), R"(","e":")",
                       BnBase64Url(key, OSSL_PKEY_PARAM_RSA_E), R"("})");
  } else {
    unsigned char point[65];
    size_t size = 0;
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &size);
    jwk = absl::StrCat(R"({"kty":"EC","crv":"P-256","kid":")", kid, R"(","x":")",
                       Base64Url(point + 1, 32), R"(","y":")", Base64Url(point + 33, 32),
                       R"("})");
  }
  EVP_PKEY_free(key);
  return jwk;
}

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
