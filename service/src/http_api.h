// logbookd's HTTP/JSON API (docs/http-api.md), served on --http-listen
// with cpp-httplib. Each request becomes the gRPC call it stands for, made
// in-process to this server's own service: authentication, tenants, stream
// scopes, quotas, limits and metrics are the gRPC API's, exactly. The
// caller's Authorization, logbook-tenant and traceparent headers go along
// as the call's metadata; gRPC status codes become HTTP statuses
// (HttpStatusFor) with a JSON error body naming the code and the field.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "logbook/v1/event_store.pb.h"

namespace httplib {
class Server;
}

namespace logbook::service {

class SseRegistry;

// The HTTP status for a call that ended with `code`. Pure.
int HttpStatusFor(grpc::StatusCode code);

// The AppendRequest a POST /v1/streams/{id} asks for: `body` is
// {"events": [{"type", "data", "event_id"?, "metadata"?, "content_type"?,
// "correlation_id"?, "causation_id"?, "schema_version"?}, ...],
// "expected_version"?: "any" | "no_stream" | "stream_exists" | N}; an
// If-Match header of a version N, or If-None-Match: *, says the same and
// wins over the field. INVALID_ARGUMENT naming what is wrong. Pure.
absl::StatusOr<v1::AppendRequest> ParseAppend(absl::string_view stream_id, absl::string_view body,
                                              absl::string_view if_match,
                                              absl::string_view if_none_match);

// The ParkedSelection a POST /v1/groups/{group}/parked/replay or /drop
// asks for: `body` is {"delivery_ids": [N, ...]} or {"all": true,
// "max_count"?: N}. INVALID_ARGUMENT naming what is wrong. Pure.
absl::StatusOr<v1::ParkedSelection> ParseParkedSelection(absl::string_view group,
                                                         absl::string_view body);

// Thread-safe; destruction stops it (requests in progress end first).
class HttpApi {
 public:
  // Listens on `listen` (HOST:PORT; port 0: any free one) and serves the
  // API through `channel`, an in-process channel to this server, and the
  // web console at / (from `console_dir` when not empty, else built in).
  static absl::StatusOr<std::unique_ptr<HttpApi>> Start(const std::string& listen,
                                                        std::shared_ptr<grpc::Channel> channel,
                                                        const std::string& console_dir = "");
  ~HttpApi();
  int port() const { return port_; }

 private:
  HttpApi() = default;

  std::shared_ptr<SseRegistry> subscriptions_;  // Served as Server-Sent Events now.
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace logbook::service
