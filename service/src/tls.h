// TLS for logbookd (docs/security.md): the credentials its port is served
// with, and the checks made before it starts.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "logbook/service/server.h"

namespace logbook::service {

// How often the certificate files are read again: a renewed certificate is
// served within this, without a restart and without dropping open calls.
inline constexpr unsigned kTlsRefreshSeconds = 2;

// Whether `listen` (host:port) names a loopback address: 127.0.0.0/8,
// ::1 or localhost. Pure.
bool IsLoopbackListen(absl::string_view listen);

// INVALID_ARGUMENT naming the option and file when a file of `tls` cannot be
// read, is not PEM of the right kind, or the key is not the certificate's.
// OK when TLS is off (no certificate).
absl::Status CheckServerTls(const ServerTls& tls);

// TLS (and mTLS with a client CA) from the files of `tls`, watched for
// renewals; plaintext when it has no certificate.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerTls& tls);

}  // namespace logbook::service
