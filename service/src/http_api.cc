#include "http_api.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "console_files.h"
#include "logbook/store/limits.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "logbook_json.h"
#include "metrics.h"

namespace logbook::service {
namespace {

using nlohmann::json;

// Request bodies larger than this are refused with 413 before any call:
// the gRPC API's own message limit.
constexpr size_t kMaxBodyBytes = 16 * 1024 * 1024;
// Connections served at once (each request holds one of these threads).
constexpr size_t kThreads = 16;

json ErrorJson(absl::string_view code, absl::string_view message) {
  return json{{"error", {{"code", code}, {"message", message}}}};
}

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "CANCELLED";
    case grpc::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::ABORTED:
      return "ABORTED";
    case grpc::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "INTERNAL";
  }
}

// A call that failed: its HTTP status and {"error": {code, message}}, with
// "actual_version" for a wrong expected version.
void ReplyError(httplib::Response& res, const grpc::Status& s,
                const grpc::ClientContext* ctx = nullptr) {
  json body = ErrorJson(CodeName(s.error_code()), s.error_message());
  if (s.error_code() == grpc::ABORTED && ctx != nullptr) {
    const auto& trailers = ctx->GetServerTrailingMetadata();
    if (auto it = trailers.find("logbook-actual-version"); it != trailers.end()) {
      uint64_t v = 0;
      if (absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &v)) {
        body["error"]["actual_version"] = v;
      }
    }
  }
  Reply(res, HttpStatusFor(s.error_code()), body);
}

void ReplyBadRequest(httplib::Response& res, absl::string_view message) {
  Reply(res, 400, ErrorJson("INVALID_ARGUMENT", message));
}

// The caller's credentials and tenant (and trace context) as call metadata.
void Prepare(grpc::ClientContext& ctx, const httplib::Request& req) {
  for (const char* header : {"authorization", "logbook-tenant", "traceparent"}) {
    if (req.has_header(header)) ctx.AddMetadata(header, req.get_header_value(header));
  }
}

// Query parameter `name` as an unsigned integer, if given.
absl::StatusOr<std::optional<uint64_t>> UintParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  const std::string text = req.get_param_value(name);
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || text.empty() || text[0] == '+' || text[0] == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": '", text, "' is not a non-negative integer"));
  }
  return v;
}

// direction=forward|backward.
absl::StatusOr<v1::Direction> DirectionParam(const httplib::Request& req) {
  if (!req.has_param("direction")) return v1::FORWARD;
  const std::string d = req.get_param_value("direction");
  if (d == "forward") return v1::FORWARD;
  if (d == "backward") return v1::BACKWARD;
  return absl::InvalidArgumentError(
      absl::StrCat("direction: '", d, "' is not forward or backward"));
}

// The parameters both reads take: from, limit, until, direction.
struct ReadParams {
  std::optional<uint64_t> from, limit, until;
  v1::Direction direction = v1::FORWARD;
};

absl::StatusOr<ReadParams> ReadParamsOf(const httplib::Request& req) {
  ReadParams p;
  for (auto [name, out] :
       {std::pair{"from", &p.from}, std::pair{"limit", &p.limit}, std::pair{"until", &p.until}}) {
    absl::StatusOr<std::optional<uint64_t>> v = UintParam(req, name);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  absl::StatusOr<v1::Direction> direction = DirectionParam(req);
  if (!direction.ok()) return direction.status();
  p.direction = *direction;
  return p;
}

// Reads the server-streamed events of `reader` into {"events": [...]}.
template <typename Reader>
void ReplyEvents(httplib::Response& res, grpc::ClientContext& ctx, Reader reader) {
  json events = json::array();
  v1::ReadResponse r;
  while (reader->Read(&r)) {
    if (r.has_event()) events.push_back(logbook::json::EventJson(r.event()));
    for (const v1::RecordedEvent& e : r.events().events()) {
      events.push_back(logbook::json::EventJson(e));
    }
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok()) return ReplyError(res, s, &ctx);
  Reply(res, 200, json{{"events", std::move(events)}});
}

// The payload of an event to append: JSON content takes any JSON value;
// other content a string (UTF-8 text) or {"base64": "..."}.
absl::StatusOr<std::string> PayloadBytes(const std::string& field, const std::string& content_type,
                                         const json& value) {
  if (store::IsJsonContentType(content_type)) return value.dump();
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.size() == 1 && value.contains("base64") &&
      value["base64"].is_string()) {
    std::string bytes;
    if (absl::Base64Unescape(value["base64"].get<std::string>(), &bytes)) return bytes;
    return absl::InvalidArgumentError(absl::StrCat(field, ".base64: not base64"));
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": with content_type ", content_type,
                                                 " it must be a string or {\"base64\": \"...\"}"));
}

// One answer of a subscription as SSE text: each event as "id: <position>",
// "event: event" and its JSON; caught_up and fell_behind as events of
// their own; the rest (checkpoints) as nothing.
std::string SseText(const v1::SubscribeResponse& r) {
  std::string out;
  auto event = [&out](const v1::RecordedEvent& e) {
    absl::StrAppend(&out, "id: ", e.global_position(),
                    "\nevent: event\ndata: ", logbook::json::EventJson(e).dump(), "\n\n");
  };
  if (r.has_event()) event(r.event());
  for (const v1::RecordedEvent& e : r.events().events()) event(e);
  if (r.has_caught_up()) {
    absl::StrAppend(&out, "event: caught_up\ndata: {\"global_position\":",
                    r.caught_up().global_position(), "}\n\n");
  }
  if (r.has_fell_behind()) {
    absl::StrAppend(&out, "event: fell_behind\ndata: {\"global_position\":",
                    r.fell_behind().global_position(), "}\n\n");
  }
  return out;
}

}  // namespace

// Implementation details of /v1/subscribe, outside the anonymous namespace
// because HttpApi holds the registry.
class SseSubscription;

// The subscriptions being served, so that stopping ends them at once.
class SseRegistry {
 public:
  void Add(SseSubscription* s) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.insert(s);
  }
  void Remove(SseSubscription* s) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(s);
  }
  void CancelAll();

 private:
  std::mutex mu_;
  std::set<SseSubscription*> live_;  // Guarded by mu_.
};

// A subscription served as Server-Sent Events: a thread of its own reads
// the gRPC stream into a queue, so that the request's thread can write
// what arrives and, when nothing does for kKeepAlive, a comment, which is
// how it learns that the client went away (then the call is cancelled).
class SseSubscription {
 public:
  // Sent when nothing else was for this long.
  static constexpr std::chrono::seconds kKeepAlive{5};

  SseSubscription(std::shared_ptr<v1::EventStore::Stub> stub, const v1::SubscribeRequest& request,
                  const httplib::Request& req, std::shared_ptr<SseRegistry> registry)
      : registry_(std::move(registry)) {
    Prepare(ctx_, req);
    reader_ = stub->Subscribe(&ctx_, request);
    thread_ = std::thread([this] { Read(); });
    registry_->Add(this);
  }
  ~SseSubscription() {
    registry_->Remove(this);
    Cancel();
    thread_.join();
  }
  // Ends the call; what was read is still taken, then Ended() says so.
  void Cancel() { ctx_.TryCancel(); }

  // Waits up to `timeout` for the next answer: an answer, or nullopt
  // (nothing yet, or the call ended: see ended()).
  std::optional<v1::SubscribeResponse> Next(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return !queue_.empty() || ended_; });
    if (queue_.empty()) return std::nullopt;
    v1::SubscribeResponse r = std::move(queue_.front());
    queue_.pop_front();
    return r;
  }
  // Whether the call ended, and how (once every answer was taken).
  std::optional<grpc::Status> Ended() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ended_ || !queue_.empty()) return std::nullopt;
    return status_;
  }
  const grpc::ClientContext& context() const { return ctx_; }

 private:
  void Read() {
    v1::SubscribeResponse r;
    while (reader_->Read(&r)) {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(r));
      cv_.notify_one();
    }
    grpc::Status status = reader_->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(status);
    ended_ = true;
    cv_.notify_one();
  }

  const std::shared_ptr<SseRegistry> registry_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::SubscribeResponse> queue_;  // Guarded by mu_.
  bool ended_ = false;                       // Guarded by mu_.
  grpc::Status status_;                      // Guarded by mu_.
  std::thread thread_;                       // Last: starts after the members above.
};

void SseRegistry::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (SseSubscription* s : live_) s->Cancel();
}

int HttpStatusFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK:
      return 200;
    case grpc::INVALID_ARGUMENT:
    case grpc::OUT_OF_RANGE:
      return 400;
    case grpc::UNAUTHENTICATED:
      return 401;
    case grpc::PERMISSION_DENIED:
      return 403;
    case grpc::NOT_FOUND:
      return 404;
    case grpc::ALREADY_EXISTS:
    case grpc::FAILED_PRECONDITION:
      return 409;
    case grpc::ABORTED:
      return 412;  // A wrong expected version.
    case grpc::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::UNIMPLEMENTED:
      return 501;
    case grpc::UNAVAILABLE:
      return 503;
    case grpc::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

absl::StatusOr<v1::AppendRequest> ParseAppend(absl::string_view stream_id, absl::string_view body,
                                              absl::string_view if_match,
                                              absl::string_view if_none_match) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("body: not a JSON object");
  }
  v1::AppendRequest request;
  request.set_stream_id(std::string(stream_id));
  if (!j.contains("events") || !j["events"].is_array()) {
    return absl::InvalidArgumentError("events: missing, or not an array");
  }
  for (size_t i = 0; i < j["events"].size(); ++i) {
    const json& e = j["events"][i];
    const std::string field = absl::StrCat("events[", i, "]");
    if (!e.is_object()) return absl::InvalidArgumentError(absl::StrCat(field, ": not an object"));
    v1::EventData& data = *request.add_events();
    for (const char* text :
         {"type", "event_id", "content_type", "correlation_id", "causation_id"}) {
      if (!e.contains(text)) continue;
      if (!e[text].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".", text, ": not a string"));
      }
      const std::string v = e[text].get<std::string>();
      const absl::string_view name = text;
      if (name == "type") data.set_type(v);
      if (name == "event_id") data.set_event_id(v);
      if (name == "content_type") data.set_content_type(v);
      if (name == "correlation_id") data.set_correlation_id(v);
      if (name == "causation_id") data.set_causation_id(v);
    }
    const std::string content_type =
        data.has_content_type() ? data.content_type() : "application/json";
    if (e.contains("data")) {
      absl::StatusOr<std::string> bytes =
          PayloadBytes(absl::StrCat(field, ".data"), content_type, e["data"]);
      if (!bytes.ok()) return bytes.status();
      data.set_data(*std::move(bytes));
    } else {
      data.set_data(store::IsJsonContentType(content_type) ? "{}" : "");
    }
    if (e.contains("metadata")) {
      absl::StatusOr<std::string> bytes =
          PayloadBytes(absl::StrCat(field, ".metadata"), content_type, e["metadata"]);
      if (!bytes.ok()) return bytes.status();
      data.set_metadata(*std::move(bytes));
    }
    if (e.contains("schema_version")) {
      if (!e["schema_version"].is_number_unsigned() ||
          e["schema_version"].get<uint64_t>() > UINT32_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".schema_version: not an unsigned 32-bit integer"));
      }
      data.set_schema_version(e["schema_version"].get<uint32_t>());
    }
  }
  v1::ExpectedVersion& expected = *request.mutable_expected_version();
  expected.mutable_any();
  if (j.contains("expected_version")) {
    const json& v = j["expected_version"];
    if (v.is_number_unsigned()) {
      expected.set_exact(v.get<uint64_t>());
    } else if (v == "any") {
      expected.mutable_any();
    } else if (v == "no_stream") {
      expected.mutable_no_stream();
    } else if (v == "stream_exists") {
      expected.mutable_stream_exists();
    } else {
      return absl::InvalidArgumentError(
          "expected_version: not \"any\", \"no_stream\", \"stream_exists\" or a version");
    }
  }
  if (!if_match.empty()) {
    uint64_t v = 0;
    std::string text(if_match);
    if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
      text = text.substr(1, text.size() - 2);
    }
    if (!absl::SimpleAtoi(text, &v) || text.empty() || text[0] == '-' || text[0] == '+') {
      return absl::InvalidArgumentError(
          absl::StrCat("If-Match: '", if_match, "' is not a stream version"));
    }
    expected.set_exact(v);
  } else if (!if_none_match.empty()) {
    if (if_none_match != "*") {
      return absl::InvalidArgumentError(
          absl::StrCat("If-None-Match: '", if_none_match, "' is not *"));
    }
    expected.mutable_no_stream();
  }
  return request;
}

namespace {

// A list's page size: limit, if given, at most store::kMaxListCount.
absl::StatusOr<uint32_t> ListLimit(const httplib::Request& req) {
  absl::StatusOr<std::optional<uint64_t>> limit = UintParam(req, "limit");
  if (!limit.ok()) return limit.status();
  if (*limit && **limit > store::kMaxListCount) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit: ", **limit, " is over the limit of ", store::kMaxListCount));
  }
  return static_cast<uint32_t>(limit->value_or(0));
}

// A verification's outcome: ok, events checked, the head hash, and the
// first broken event if any.
json VerifyResultJson(const v1::VerifyResult& result) {
  json body = {{"ok", result.ok()},
               {"events_checked", result.events_checked()},
               {"head_hash", absl::BytesToHexString(result.head_hash())}};
  if (result.has_first_broken()) {
    const v1::BrokenEvent& b = result.first_broken();
    body["first_broken"] = {{"stream_id", b.stream_id()},
                            {"stream_version", b.stream_version()},
                            {"global_position", b.global_position()},
                            {"reason", v1::BreakReason_Name(b.reason())},
                            {"detail", b.detail()}};
  }
  return body;
}

}  // namespace

absl::StatusOr<v1::ParkedSelection> ParseParkedSelection(absl::string_view group,
                                                         absl::string_view body) {
  const json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("body: not a JSON object");
  v1::ParkedSelection selection;
  selection.set_group(std::string(group));
  if (j.contains("all") && !j["all"].is_boolean()) {
    return absl::InvalidArgumentError("all: not true or false");
  }
  const bool ids = j.contains("delivery_ids"), all = j.value("all", false);
  if (ids == all) {
    return absl::InvalidArgumentError("body: give \"delivery_ids\": [...] or \"all\": true");
  }
  if (all) {
    selection.mutable_all();
    if (j.contains("max_count")) {
      if (!j["max_count"].is_number_unsigned()) {
        return absl::InvalidArgumentError("max_count: not a non-negative integer");
      }
      selection.set_max_count(j["max_count"].get<uint64_t>());
    }
    return selection;
  }
  if (!j["delivery_ids"].is_array() || j["delivery_ids"].empty()) {
    return absl::InvalidArgumentError("delivery_ids: not a non-empty array");
  }
  for (const json& id : j["delivery_ids"]) {
    if (!id.is_number_unsigned()) {
      return absl::InvalidArgumentError("delivery_ids: not an array of delivery ids");
    }
    selection.mutable_ids()->add_delivery_ids(id.get<uint64_t>());
  }
  return selection;
}

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(const std::string& listen,
                                                        std::shared_ptr<grpc::Channel> channel,
                                                        const std::string& console_dir) {
  absl::StatusOr<std::pair<std::string, int>> where = ParseListen("--http-listen", listen);
  if (!where.ok()) return where.status();
  auto stub = std::shared_ptr<v1::EventStore::Stub>(v1::EventStore::NewStub(channel));
  std::unique_ptr<HttpApi> api(new HttpApi());
  api->subscriptions_ = std::make_shared<SseRegistry>();
  api->http_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *api->http_;
  http.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  http.set_payload_max_length(kMaxBodyBytes);

  http.Get(R"(/v1/streams/([^/]+)/info)",
           [stub](const httplib::Request& req, httplib::Response& res) {
             grpc::ClientContext ctx;
             Prepare(ctx, req);
             v1::GetStreamRequest request;
             request.set_stream_id(req.matches[1]);
             v1::StreamInfo info;
             const grpc::Status s = stub->GetStream(&ctx, request, &info);
             if (!s.ok()) return ReplyError(res, s, &ctx);
             Reply(res, 200, logbook::json::StreamInfoJson(info));
           });

  // Verification, answered when it is done; or, with Accept:
  // text/event-stream, as Server-Sent Events: "progress" as it goes, then
  // "result" (or "error").
  http.Get(R"(/v1/streams/([^/]+)/verify)", [stub](const httplib::Request& req,
                                                   httplib::Response& res) {
    struct Call {
      grpc::ClientContext ctx;
      std::unique_ptr<grpc::ClientReader<v1::VerifyResponse>> reader;
    };
    auto call = std::make_shared<Call>();
    Prepare(call->ctx, req);
    v1::VerifyRequest request;
    request.set_stream_id(req.matches[1]);
    call->reader = stub->Verify(&call->ctx, request);
    if (absl::StrContains(req.get_header_value("Accept"), "text/event-stream")) {
      // A call refused at once (a token, a missing stream) is an HTTP
      // error, as for /v1/subscribe: the first message comes at once
      // otherwise.
      auto first = std::make_shared<v1::VerifyResponse>();
      if (!call->reader->Read(first.get())) {
        const grpc::Status s = call->reader->Finish();
        return ReplyError(
            res, s.ok() ? grpc::Status(grpc::INTERNAL, "verify: the server sent no result") : s,
            &call->ctx);
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [call, first](size_t,
                                                                          httplib::DataSink& sink) {
        v1::VerifyResponse r = *first;
        for (bool more = true; more; more = call->reader->Read(&r)) {
          const std::string text =
              r.has_result()
                  ? absl::StrCat("event: result\ndata: ", VerifyResultJson(r.result()).dump(),
                                 "\n\n")
                  : absl::StrCat("event: progress\ndata: ",
                                 json{{"events_checked", r.progress().events_checked()},
                                      {"events_total", r.progress().events_total()}}
                                     .dump(),
                                 "\n\n");
          if (!sink.write(text.data(), text.size())) {
            call->ctx.TryCancel();
            call->reader->Finish();
            return false;
          }
        }
        if (const grpc::Status s = call->reader->Finish(); !s.ok()) {
          const std::string text = absl::StrCat(
              "event: error\ndata: ", ErrorJson(CodeName(s.error_code()), s.error_message()).dump(),
              "\n\n");
          sink.write(text.data(), text.size());
        }
        sink.done();
        return true;
      });
      return;
    }
    v1::VerifyResponse r;
    std::optional<v1::VerifyResult> result;
    while (call->reader->Read(&r)) {
      if (r.has_result()) result = r.result();
    }
    const grpc::Status s = call->reader->Finish();
    if (!s.ok()) return ReplyError(res, s, &call->ctx);
    if (!result) {
      return Reply(res, 500, ErrorJson("INTERNAL", "verify: the server sent no result"));
    }
    Reply(res, 200, VerifyResultJson(*result));
  });

  http.Get(R"(/v1/streams/([^/]+))", [stub](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<ReadParams> p = ReadParamsOf(req);
    if (!p.ok()) return ReplyBadRequest(res, p.status().message());
    v1::ReadStreamRequest request;
    request.set_stream_id(req.matches[1]);
    if (p->from) request.set_from_version(*p->from);
    if (p->limit) request.set_max_count(*p->limit);
    if (p->until) request.set_until_version(*p->until);
    request.set_direction(p->direction);
    request.set_max_events_per_message(1000);
    if (req.has_param("as_of") &&
        !logbook::json::ParseRfc3339(req.get_param_value("as_of"), request.mutable_until_time())) {
      return ReplyBadRequest(
          res, absl::StrCat("as_of: '", req.get_param_value("as_of"), "' is not RFC 3339"));
    }
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    ReplyEvents(res, ctx, stub->ReadStream(&ctx, request));
  });

  http.Post(R"(/v1/streams/([^/]+))", [stub](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<v1::AppendRequest> request =
        ParseAppend(req.matches[1].str(), req.body, req.get_header_value("If-Match"),
                    req.get_header_value("If-None-Match"));
    if (!request.ok()) return ReplyBadRequest(res, request.status().message());
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    v1::AppendResponse r;
    const grpc::Status s = stub->Append(&ctx, *request, &r);
    if (!s.ok()) return ReplyError(res, s, &ctx);
    Reply(res, 201, logbook::json::AppendJson(request->stream_id(), r));
  });

  http.Get("/v1/all", [stub](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<ReadParams> p = ReadParamsOf(req);
    if (!p.ok()) return ReplyBadRequest(res, p.status().message());
    v1::ReadAllRequest request;
    if (p->from) request.set_from_position(*p->from);
    if (p->limit) request.set_max_count(*p->limit);
    if (p->until) request.set_until_position(*p->until);
    request.set_direction(p->direction);
    request.set_max_events_per_message(1000);
    v1::Filter& filter = *request.mutable_filter();
    if (req.has_param("category")) filter.set_category(req.get_param_value("category"));
    if (req.has_param("prefix")) filter.set_stream_prefix(req.get_param_value("prefix"));
    for (size_t i = 0; i < req.get_param_value_count("type"); ++i) {
      filter.add_event_types(req.get_param_value("type", i));
    }
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    ReplyEvents(res, ctx, stub->ReadAll(&ctx, request));
  });

  http.Get("/v1/groups", [stub](const httplib::Request& req, httplib::Response& res) {
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    v1::ListConsumerGroupsResponse r;
    const grpc::Status s = stub->ListConsumerGroups(&ctx, v1::ListConsumerGroupsRequest(), &r);
    if (!s.ok()) return ReplyError(res, s, &ctx);
    json groups = json::array();
    for (const v1::ConsumerGroupInfo& g : r.groups()) groups.push_back(logbook::json::GroupJson(g));
    Reply(res, 200, json{{"groups", std::move(groups)}});
  });

  http.Get("/v1/streams", [stub](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<uint32_t> limit = ListLimit(req);
    if (!limit.ok()) return ReplyBadRequest(res, limit.status().message());
    v1::ListStreamsRequest request;
    request.set_prefix(req.get_param_value("prefix"));
    request.set_after(req.get_param_value("after"));
    request.set_max_count(*limit);
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    v1::ListStreamsResponse r;
    const grpc::Status s = stub->ListStreams(&ctx, request, &r);
    if (!s.ok()) return ReplyError(res, s, &ctx);
    json body = {{"streams", json::array()}};
    for (const v1::StreamInfo& info : r.streams()) {
      body["streams"].push_back(logbook::json::StreamInfoJson(info));
    }
    if (r.has_next_after()) body["next_after"] = r.next_after();
    Reply(res, 200, body);
  });

  http.Get("/v1/categories", [stub](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<uint32_t> limit = ListLimit(req);
    if (!limit.ok()) return ReplyBadRequest(res, limit.status().message());
    v1::ListCategoriesRequest request;
    request.set_prefix(req.get_param_value("prefix"));
    request.set_after(req.get_param_value("after"));
    request.set_max_count(*limit);
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    v1::ListCategoriesResponse r;
    const grpc::Status s = stub->ListCategories(&ctx, request, &r);
    if (!s.ok()) return ReplyError(res, s, &ctx);
    json body = {{"categories", r.categories()}};
    if (r.has_next_after()) body["next_after"] = r.next_after();
    Reply(res, 200, body);
  });

  http.Get(R"(/v1/groups/([^/]+))", [stub](const httplib::Request& req, httplib::Response& res) {
    grpc::ClientContext ctx;
    Prepare(ctx, req);
    v1::GetConsumerGroupRequest request;
    request.set_group(req.matches[1]);
    v1::ConsumerGroupInfo info;
    const grpc::Status s = stub->GetConsumerGroup(&ctx, request, &info);
    if (!s.ok()) return ReplyError(res, s, &ctx);
    Reply(res, 200, logbook::json::GroupJson(info));
  });

  http.Get(R"(/v1/groups/([^/]+)/parked)",
           [stub](const httplib::Request& req, httplib::Response& res) {
             absl::StatusOr<std::optional<uint64_t>> after = UintParam(req, "after");
             if (!after.ok()) return ReplyBadRequest(res, after.status().message());
             absl::StatusOr<uint32_t> limit = ListLimit(req);
             if (!limit.ok()) return ReplyBadRequest(res, limit.status().message());
             v1::ListParkedRequest request;
             request.set_group(req.matches[1]);
             request.set_after(after->value_or(0));
             request.set_max_count(*limit);
             grpc::ClientContext ctx;
             Prepare(ctx, req);
             v1::ListParkedResponse r;
             const grpc::Status s = stub->ListParked(&ctx, request, &r);
             if (!s.ok()) return ReplyError(res, s, &ctx);
             json body = {{"parked", json::array()}};
             for (const v1::ParkedEvent& p : r.parked()) {
               body["parked"].push_back(logbook::json::ParkedJson(p));
             }
             if (r.has_next_after()) body["next_after"] = r.next_after();
             Reply(res, 200, body);
           });

  http.Post(R"(/v1/groups/([^/]+)/parked/(replay|drop))",
            [stub](const httplib::Request& req, httplib::Response& res) {
              absl::StatusOr<v1::ParkedSelection> selection =
                  ParseParkedSelection(req.matches[1].str(), req.body);
              if (!selection.ok()) return ReplyBadRequest(res, selection.status().message());
              grpc::ClientContext ctx;
              Prepare(ctx, req);
              if (req.matches[2] == "replay") {
                v1::ReplayParkedRequest request;
                *request.mutable_selection() = *std::move(selection);
                v1::ReplayParkedResponse r;
                const grpc::Status s = stub->ReplayParked(&ctx, request, &r);
                if (!s.ok()) return ReplyError(res, s, &ctx);
                return Reply(res, 200, json{{"replayed", r.replayed()}});
              }
              v1::DropParkedRequest request;
              *request.mutable_selection() = *std::move(selection);
              v1::DropParkedResponse r;
              const grpc::Status s = stub->DropParked(&ctx, request, &r);
              if (!s.ok()) return ReplyError(res, s, &ctx);
              Reply(res, 200, json{{"dropped", r.dropped()}});
            });

  // The web console: / is its index.html, /NAME its other files.
  auto console = [console_dir](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches.size() > 1 ? req.matches[1].str() : "";
    absl::StatusOr<std::string> bytes = ReadConsoleFile(name, console_dir);
    if (!bytes.ok()) {
      return Reply(res, 404, ErrorJson("NOT_FOUND", bytes.status().message()));
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Content-Type-Options", "nosniff");
    // No script but the console's own files; it talks only to this server.
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "frame-ancestors 'none'");
    res.set_content(*std::move(bytes), ConsoleContentType(name.empty() ? "index.html" : name));
  };
  http.Get("/", console);
  http.Get(R"(/([A-Za-z0-9_-][A-Za-z0-9._-]*))", console);

  http.Get("/v1/subscribe", [stub, registry = api->subscriptions_](const httplib::Request& req,
                                                                   httplib::Response& res) {
    v1::SubscribeRequest request;
    request.set_max_events_per_message(100);
    if (req.has_param("stream") && req.has_param("category")) {
      return ReplyBadRequest(res, "stream, category: give one, or neither for $all");
    }
    if (req.has_param("stream")) {
      request.set_stream_id(req.get_param_value("stream"));
    } else if (req.has_param("category")) {
      request.set_category(req.get_param_value("category"));
    } else {
      request.mutable_all();
    }
    if (req.has_param("prefix"))
      request.mutable_filter()->set_stream_prefix(req.get_param_value("prefix"));
    for (size_t i = 0; i < req.get_param_value_count("type"); ++i) {
      request.mutable_filter()->add_event_types(req.get_param_value("type", i));
    }
    // Where to start: after the Last-Event-ID the browser resends, else
    // after `from`, else `now`, else from the beginning.
    absl::StatusOr<std::optional<uint64_t>> from = UintParam(req, "from");
    if (!from.ok()) return ReplyBadRequest(res, from.status().message());
    if (req.has_header("Last-Event-ID")) {
      uint64_t last = 0;
      if (!absl::SimpleAtoi(req.get_header_value("Last-Event-ID"), &last)) {
        return ReplyBadRequest(
            res, absl::StrCat("Last-Event-ID: '", req.get_header_value("Last-Event-ID"),
                              "' is not a global position"));
      }
      request.set_after_position(last);
    } else if (*from) {
      request.set_after_position(**from);
    } else if (req.get_param_value("now") == "true") {
      request.mutable_from_now();
    } else {
      request.mutable_from_beginning();
    }
    auto sub = std::make_shared<SseSubscription>(stub, request, req, registry);
    // A call refused at once (a token, a scope, a missing stream) is an
    // HTTP error, not a stream.
    std::optional<v1::SubscribeResponse> first = sub->Next(std::chrono::seconds(10));
    if (!first) {
      if (std::optional<grpc::Status> s = sub->Ended(); s && !s->ok()) {
        return ReplyError(res, *s, &sub->context());
      }
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [sub, first = std::move(first)](size_t, httplib::DataSink& sink) mutable {
          if (first) {
            const std::string text = SseText(*first);
            first.reset();
            if (!text.empty() && !sink.write(text.data(), text.size())) return false;
          }
          for (;;) {
            std::optional<v1::SubscribeResponse> r = sub->Next(SseSubscription::kKeepAlive);
            if (r) {
              const std::string text = SseText(*r);
              if (!text.empty() && !sink.write(text.data(), text.size())) return false;
              continue;
            }
            if (std::optional<grpc::Status> s = sub->Ended()) {
              if (!s->ok()) {
                const std::string text = absl::StrCat(
                    "event: error\ndata: ",
                    ErrorJson(CodeName(s->error_code()), s->error_message()).dump(), "\n\n");
                sink.write(text.data(), text.size());
              }
              sink.done();
              return true;
            }
            static constexpr char kComment[] = ": keep-alive\n\n";
            if (!sink.write(kComment, sizeof(kComment) - 1)) return false;  // Gone.
          }
        },
        [sub](bool) { /* Destroying the last copy cancels the call. */ });
  });

  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      Reply(res, 404,
            ErrorJson("NOT_FOUND", absl::StrCat("no such resource: ", req.method, " ", req.path,
                                                " (docs/http-api.md)")));
    } else if (res.status == 413) {
      Reply(res, 413,
            ErrorJson("RESOURCE_EXHAUSTED",
                      absl::StrCat("body: larger than ", kMaxBodyBytes, " bytes")));
    }
  });

  const auto& [host, port] = *where;
  api->port_ =
      port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (api->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("--http-listen: cannot listen on ", listen));
  }
  api->thread_ = std::thread([&http] { http.listen_after_bind(); });
  return api;
}

HttpApi::~HttpApi() {
  if (subscriptions_ != nullptr) subscriptions_->CancelAll();  // Their requests end now.
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace logbook::service
