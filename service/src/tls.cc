#include "tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"

namespace logbook::service {

bool IsLoopbackListen(absl::string_view listen) {
  absl::string_view host = listen.substr(0, listen.rfind(':'));
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return absl::StartsWith(host, "127.") || host == "::1" ||
         absl::AsciiStrToLower(host) == "localhost";
}

namespace {

absl::Status ReadFile(absl::string_view option, const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(option, ": cannot read '", path, "'"));
  }
  out = text.str();
  return absl::OkStatus();
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

absl::Status CheckServerTls(const ServerTls& tls) {
  if (tls.cert_file.empty()) {
    if (!tls.key_file.empty() || !tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-key and --tls-client-ca need --tls-cert (the server's certificate)");
    }
    return absl::OkStatus();
  }
  if (tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert needs --tls-key (its private key)");
  }
  std::string cert_pem, key_pem, ca_pem;
  if (absl::Status s = ReadFile("--tls-cert", tls.cert_file, cert_pem); !s.ok()) return s;
  if (absl::Status s = ReadFile("--tls-key", tls.key_file, key_pem); !s.ok()) return s;
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(Bio(cert_pem).get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: '", tls.cert_file, "' holds no PEM certificate"));
  }
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(Bio(key_pem).get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key: '", tls.key_file, "' holds no PEM private key (or one with a passphrase)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-key: '", tls.key_file,
                                                   "' is not the key of --tls-cert '",
                                                   tls.cert_file, "'"));
  }
  if (!tls.client_ca_file.empty()) {
    if (absl::Status s = ReadFile("--tls-client-ca", tls.client_ca_file, ca_pem); !s.ok()) {
      return s;
    }
    std::unique_ptr<X509, X509Free> ca(
        PEM_read_bio_X509(Bio(ca_pem).get(), nullptr, nullptr, nullptr));
    if (ca == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls-client-ca: '", tls.client_ca_file, "' holds no PEM certificate"));
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerTls& tls) {
  if (tls.cert_file.empty()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.client_ca_file, kTlsRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace logbook::service
