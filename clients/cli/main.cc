// logbook: the command-line client. Talks to logbookd over gRPC; `migrate`
// talks to PostgreSQL directly.
//
// Exit codes (stable, for scripts):
//   0  ok
//   1  unexpected error
//   2  usage
//   3  not found
//   4  conflict (wrong expected version, event id reused)
//   5  input rejected (invalid or too large)
//   6  server or database unavailable
//   7  failed precondition (e.g. an edited or missing migration, a tombstoned
//      stream, a snapshot beyond the stream's head, an event already redacted)
//   8  tampering found (`verify` printed the first broken event, or an append
//      was refused because a stream's row was edited: DATA_LOSS)
//   9  not allowed (admin call without the right admin token)
#include <grpcpp/grpcpp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "completion.h"
#include "logbook/client/client.h"
#include "logbook/client/worker.h"
#include "logbook/store/checkpoints.h"
#include "logbook/store/limits.h"
#include "logbook/store/migrations.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "logbook_json.h"
#include "nlohmann/json.hpp"

namespace {

namespace v1 = logbook::v1;
using logbook::json::AppendJson;
using logbook::json::EventJson;
using logbook::json::GroupJson;
using logbook::json::ParseRfc3339;
using logbook::json::PayloadJson;
using logbook::json::Rfc3339;
using logbook::json::StateName;
using logbook::json::StrategyName;
using logbook::json::StreamInfoJson;
using nlohmann::json;

enum Exit { kOk = 0, kError = 1, kUsage = 2, kNotFound = 3, kConflict = 4, kRejected = 5,
            kUnavailable = 6, kPrecondition = 7, kTampered = 8, kNotAllowed = 9 };

int ExitFor(int code) {
  switch (code) {
    case grpc::StatusCode::OK: return kOk;
    case grpc::StatusCode::NOT_FOUND: return kNotFound;
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::ALREADY_EXISTS: return kConflict;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return kRejected;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: return kUnavailable;
    case grpc::StatusCode::FAILED_PRECONDITION: return kPrecondition;
    case grpc::StatusCode::DATA_LOSS: return kTampered;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED: return kNotAllowed;
    default: return kError;
  }
}

int Fail(const grpc::Status& status) {
  std::cerr << "logbook: " << status.error_message() << "\n";
  return ExitFor(status.error_code());
}

int Fail(const absl::Status& status) {
  std::cerr << "logbook: " << status.message() << "\n";
  return ExitFor(static_cast<int>(status.code()));
}

int Usage(const std::string& message) {
  std::cerr << "logbook: " << message << "\n";
  return kUsage;
}

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

// Payload bytes as one line of text: JSON re-serialized, UTF-8 text as it
// is, other bytes as their size.
std::string PayloadText(const std::string& content_type, const std::string& bytes) {
  const json j = PayloadJson(content_type, bytes);
  if (logbook::store::IsJsonContentType(content_type) && !j.is_object()) return j.dump();
  if (j.is_string()) return j.get<std::string>();
  if (!logbook::store::IsJsonContentType(content_type)) {
    return absl::StrCat("<", bytes.size(), " bytes>");
  }
  return j.dump();
}

struct Connection {
  std::string address = "127.0.0.1:50051";
  int timeout_seconds = 30;
  std::string tls_ca, tls_cert, tls_key;  // Paths; TLS when any is set.
  logbook::ClientTls tls;                 // Loaded from them after parsing.
  std::string token;                      // Bearer token; empty: none.
  std::string tenant;                     // logbook-tenant metadata; empty: none.

  logbook::ClientOptions Options() const {
    logbook::ClientOptions options;
    options.address = address;
    options.tls = tls;
    options.token = token;
    options.tenant = tenant;
    options.call_timeout = absl::Seconds(timeout_seconds);
    return options;
  }
  logbook::Client Client() const { return logbook::Client(Options()); }
  std::unique_ptr<v1::EventStore::Stub> Stub() const {
    return v1::EventStore::NewStub(
        grpc::CreateChannel(address, logbook::ChannelCredentials(tls)));
  }
  void Prepare(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
    logbook::AddCallMetadata(ctx, Options());
  }
};

int Fail(const absl::Status& status);

void PrintEvent(const v1::RecordedEvent& e, bool as_json) {
  if (as_json) {
    std::cout << EventJson(e).dump() << std::endl;
  } else {
    std::cout << e.global_position() << "  " << e.stream_id() << "@" << e.stream_version()
              << "  " << e.type();
    if (e.has_schema_version()) std::cout << " (schema " << e.schema_version() << ")";
    std::cout << "  " << Rfc3339(e.recorded_at());
    if (!e.written_by().empty()) std::cout << "  by " << e.written_by();
    std::cout << "  "
              << (e.has_redaction_reason() ? absl::StrCat("<redacted: ", e.redaction_reason(), ">")
                                           : PayloadText(e.content_type(), e.data()))
              << std::endl;
  }
}

// Prints events of `request` as they come, until `count` events (0: forever)
// or a failure that resuming cannot fix.
int Follow(const Connection& conn, v1::SubscribeRequest request, uint64_t count, bool as_json) {
  logbook::Client client = conn.Client();
  uint64_t printed = 0;
  auto subscription = client.Subscribe(std::move(request), [&](const v1::SubscribeResponse& r) {
    if (r.has_event()) {
      PrintEvent(r.event(), as_json);
      ++printed;
    } else if (r.has_caught_up()) {
      std::cerr << "-- caught up at position " << r.caught_up().global_position()
                << "; following live (Ctrl-C to stop)" << std::endl;
    }
    return count == 0 || printed < count;
  });
  absl::Status status = subscription->Wait();
  return status.ok() ? kOk : Fail(status);
}

// Bytes from --data, --data-file, or stdin when it is not a terminal; a
// usage error otherwise. `what` names the command in messages.
absl::StatusOr<std::string> ReadInput(const std::string& what, CLI::App& cmd,
                                      const std::string& data, const std::string& data_file) {
  if (cmd.count("--data") + cmd.count("--data-file") > 1) {
    return absl::InvalidArgumentError(what + ": give either --data or --data-file, not both");
  }
  std::stringstream bytes;
  if (cmd.count("--data")) return data;
  if (cmd.count("--data-file")) {
    std::ifstream in(data_file, std::ios::binary);
    if (!in) return absl::InvalidArgumentError(what + ": cannot read --data-file " + data_file);
    bytes << in.rdbuf();
  } else if (!isatty(STDIN_FILENO)) {
    bytes << std::cin.rdbuf();
  } else {
    return absl::InvalidArgumentError(what + ": give the data with --data, --data-file or on stdin");
  }
  return bytes.str();
}

// any, none, exists or a version number; false when it is none of them.
bool ParseExpect(const std::string& text, v1::ExpectedVersion* out) {
  uint64_t exact = 0;
  if (text == "any") {
    out->mutable_any();
  } else if (text == "none") {
    out->mutable_no_stream();
  } else if (text == "exists") {
    out->mutable_stream_exists();
  } else if (absl::SimpleAtoi(text, &exact)) {
    out->set_exact(exact);
  } else {
    return false;
  }
  return true;
}

struct AppendArgs {
  std::string stream, type, data, data_file, metadata, content_type, expect = "any", event_id;
  std::string correlation_id, causation_id, traceparent;
  uint32_t schema_version = 0;
  bool json = false;
};

int RunAppend(const Connection& conn, const AppendArgs& a, CLI::App& cmd) {
  v1::AppendRequest request;
  request.set_stream_id(a.stream);
  v1::EventData* event = request.add_events();
  event->set_type(a.type);
  event->set_event_id(a.event_id);
  event->set_content_type(a.content_type);
  event->set_correlation_id(a.correlation_id);
  event->set_causation_id(a.causation_id);
  event->set_metadata(a.metadata);
  if (cmd.count("--schema-version")) event->set_schema_version(a.schema_version);
  absl::StatusOr<std::string> data = ReadInput("append", cmd, a.data, a.data_file);
  if (!data.ok()) return Usage(std::string(data.status().message()));
  event->set_data(*std::move(data));
  if (!ParseExpect(a.expect, request.mutable_expected_version())) {
    return Usage("append: --expect takes any, none, exists or a version number");
  }

  logbook::Client client = conn.Client();
  absl::StatusOr<v1::AppendResponse> appended =
      client.Append(request.stream_id(), request.expected_version(),
                    {request.events().begin(), request.events().end()},
                    logbook::AppendOptions{a.traceparent});
  if (!appended.ok()) return Fail(appended.status());
  const v1::AppendResponse& response = *appended;
  if (a.json) {
    std::cout << AppendJson(a.stream, response).dump() << "\n";
  } else {
    std::cout << "appended " << a.type << " to " << a.stream << " at version "
              << response.last_version() << " (position " << response.last_position()
              << ", event id " << response.event_ids(0) << ")\n";
  }
  return kOk;
}

struct ReadArgs {
  std::string target, category, prefix, as_of;
  std::vector<std::string> types;
  uint64_t from = 0, until = 0;
  uint64_t limit = 100;
  bool backward = false, json = false, follow = false;
};

int RunRead(const Connection& conn, const ReadArgs& a, CLI::App& cmd) {
  if (a.follow && a.backward) return Usage("read: --follow reads forward");
  if (a.follow && cmd.count("--until") + cmd.count("--as-of") > 0) {
    return Usage("read: --follow goes on live; it does not combine with --until or --as-of");
  }
  google::protobuf::Timestamp as_of;
  if (cmd.count("--as-of") && !ParseRfc3339(a.as_of, &as_of)) {
    return Usage("read: --as-of takes an RFC 3339 time, e.g. 2026-11-17T14:00:00Z, not '" +
                 a.as_of + "'");
  }
  auto stub = conn.Stub();
  grpc::ClientContext ctx;
  conn.Prepare(ctx);
  const v1::Direction direction = a.backward ? v1::BACKWARD : v1::FORWARD;
  std::unique_ptr<grpc::ClientReader<v1::ReadResponse>> reader;
  if (a.target == "$all") {
    v1::ReadAllRequest request;
    if (cmd.count("--from")) request.set_from_position(a.from);
    request.set_direction(direction);
    request.set_max_count(a.limit);
    request.mutable_filter()->set_category(a.category);
    request.mutable_filter()->set_stream_prefix(a.prefix);
    for (const auto& t : a.types) request.mutable_filter()->add_event_types(t);
    if (cmd.count("--until")) request.set_until_position(a.until);
    if (cmd.count("--as-of")) *request.mutable_until_time() = as_of;
    reader = stub->ReadAll(&ctx, request);
  } else {
    if (cmd.count("--category") + cmd.count("--prefix") + cmd.count("--type") > 0) {
      return Usage("read: --category, --prefix and --type apply to '$all' only");
    }
    v1::ReadStreamRequest request;
    request.set_stream_id(a.target);
    if (cmd.count("--from")) request.set_from_version(a.from);
    request.set_direction(direction);
    request.set_max_count(a.limit);
    if (cmd.count("--until")) request.set_until_version(a.until);
    if (cmd.count("--as-of")) *request.mutable_until_time() = as_of;
    reader = stub->ReadStream(&ctx, request);
  }
  v1::ReadResponse response;
  uint64_t last_position = 0;
  while (reader->Read(&response)) {
    PrintEvent(response.event(), a.json);
    last_position = response.event().global_position();
  }
  grpc::Status status = reader->Finish();
  // A stream that does not exist yet is fine to follow: it may be created.
  const bool missing = status.error_code() == grpc::StatusCode::NOT_FOUND;
  if (!status.ok() && !(a.follow && missing)) return Fail(status);
  if (!a.follow) return kOk;
  // Go on live from where the read ended, or from where it was asked to
  // start when it found nothing, so no event in between is lost.
  v1::SubscribeRequest follow;
  if (a.target == "$all") {
    follow.mutable_all();
    follow.mutable_filter()->set_category(a.category);
    follow.mutable_filter()->set_stream_prefix(a.prefix);
    for (const auto& t : a.types) follow.mutable_filter()->add_event_types(t);
  } else {
    follow.set_stream_id(a.target);
  }
  if (last_position > 0) {
    follow.set_after_position(last_position);
  } else if (cmd.count("--from") && a.from > 0) {
    if (a.target == "$all") {
      follow.set_after_position(a.from - 1);
    } else if (missing) {
      follow.mutable_from_beginning();
    } else {
      follow.set_after_version(a.from - 1);
    }
  } else {
    follow.mutable_from_beginning();
  }
  return Follow(conn, follow, 0, a.json);
}

int RunStream(const Connection& conn, const std::string& stream, bool as_json) {
  grpc::ClientContext ctx;
  conn.Prepare(ctx);
  v1::GetStreamRequest request;
  request.set_stream_id(stream);
  v1::StreamInfo info;
  grpc::Status status = conn.Stub()->GetStream(&ctx, request, &info);
  if (!status.ok()) return Fail(status);
  if (as_json) {
    std::cout << StreamInfoJson(info).dump() << "\n";
  } else {
    std::cout << "stream         " << info.stream_id() << "\nversion        " << info.version()
              << "\nlast position  " << info.last_position() << "\ncreated at     "
              << Rfc3339(info.created_at()) << "\nstate          " << StateName(info.state())
              << "\nfirst version  " << info.first_version() << "\nhead hash      "
              << Hex(info.head_hash()) << "\n";
  }
  return kOk;
}

struct ListArgs {
  std::string prefix;
  uint64_t limit = 0;  // 0: every one.
  bool json = false;
};

// `logbook streams` (categories false) or `logbook categories`: every name
// from the prefix on, fetched in pages of up to 1,000, printed as they come.
int RunList(const Connection& conn, const ListArgs& a, bool categories) {
  std::string after;
  uint64_t printed = 0;
  for (;;) {
    const uint64_t want = a.limit == 0 ? 1000 : std::min<uint64_t>(1000, a.limit - printed);
    grpc::ClientContext ctx;
    conn.Prepare(ctx);
    std::optional<std::string> next;
    if (categories) {
      v1::ListCategoriesRequest request;
      request.set_prefix(a.prefix);
      request.set_after(after);
      request.set_max_count(static_cast<uint32_t>(want));
      v1::ListCategoriesResponse r;
      if (grpc::Status s = conn.Stub()->ListCategories(&ctx, request, &r); !s.ok()) return Fail(s);
      for (const std::string& c : r.categories()) {
        std::cout << (a.json ? json(c).dump() : c) << "\n";
      }
      printed += r.categories_size();
      if (r.has_next_after()) next = r.next_after();
    } else {
      v1::ListStreamsRequest request;
      request.set_prefix(a.prefix);
      request.set_after(after);
      request.set_max_count(static_cast<uint32_t>(want));
      v1::ListStreamsResponse r;
      if (grpc::Status s = conn.Stub()->ListStreams(&ctx, request, &r); !s.ok()) return Fail(s);
      for (const v1::StreamInfo& info : r.streams()) {
        if (a.json) {
          std::cout << StreamInfoJson(info).dump() << "\n";
        } else {
          std::cout << info.stream_id() << "  version " << info.version() << "  last position "
                    << info.last_position() << "  " << StateName(info.state()) << "\n";
        }
      }
      printed += r.streams_size();
      if (r.has_next_after()) next = r.next_after();
    }
    if (!next || (a.limit != 0 && printed >= a.limit)) return kOk;
    after = *std::move(next);
  }
}

struct SubscribeArgs {
  std::string target, category, prefix;
  std::vector<std::string> types;
  uint64_t from = 0, count = 0;
  bool now = false, json = false;
};

int RunSubscribe(const Connection& conn, const SubscribeArgs& a, CLI::App& cmd) {
  v1::SubscribeRequest request;
  const bool has_target = !a.target.empty();
  if (has_target == !a.category.empty()) {
    return Usage("subscribe: give a stream id, '$all', or --category, exactly one");
  }
  if (a.target == "$all") {
    request.mutable_all();
  } else if (has_target) {
    request.set_stream_id(a.target);
    if (!a.prefix.empty() || !a.types.empty()) {
      return Usage("subscribe: --prefix and --type apply to '$all' and --category only");
    }
  } else {
    request.set_category(a.category);
  }
  if (!request.has_stream_id()) {
    request.mutable_filter()->set_stream_prefix(a.prefix);
    for (const auto& t : a.types) request.mutable_filter()->add_event_types(t);
  }
  if (a.now && cmd.count("--from")) return Usage("subscribe: --now and --from exclude each other");
  if (a.now) {
    request.mutable_from_now();
  } else if (cmd.count("--from") && a.from > 0) {
    if (request.has_stream_id()) {
      request.set_after_version(a.from - 1);
    } else {
      request.set_after_position(a.from - 1);
    }
  }
  return Follow(conn, request, a.count, a.json);
}

// Shows verification progress on stderr: a bar redrawn in place on a
// terminal, else a line at every further 10% of a long run.
class ProgressReporter {
 public:
  explicit ProgressReporter(std::string what) : what_(std::move(what)), tty_(isatty(STDERR_FILENO)) {}
  ~ProgressReporter() {
    if (drawn_) std::cerr << "\r\033[K" << std::flush;  // Clear the bar.
  }

  void Update(const v1::VerifyProgress& p) {
    const uint64_t total = std::max<uint64_t>(p.events_total(), p.events_checked());
    const int percent = total == 0 ? 100 : static_cast<int>(p.events_checked() * 100 / total);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = percent * kWidth / 100;
      std::cerr << "\rverifying " << what_ << "  [" << std::string(filled, '#')
                << std::string(kWidth - filled, '.') << "] " << percent << "%  "
                << p.events_checked() << "/" << total << " events" << std::flush;
      drawn_ = true;
    } else if (percent / 10 > decile_ && p.events_checked() < total) {
      decile_ = percent / 10;
      std::cerr << "verifying " << what_ << ": " << percent << "% (" << p.events_checked()
                << "/" << total << " events)" << std::endl;
    }
  }

 private:
  const std::string what_;
  const bool tty_;
  bool drawn_ = false;
  int decile_ = 0;
};

// What `--public-key` proves of a verification of the whole log: that its
// newest checkpoint is signed by that key, so the log up to there is what
// the key's holder signed. Empty when proven; else why not.
std::string CheckSignedCheckpoint(const v1::VerifyResult& result, const std::string& public_key) {
  if (!result.has_latest_checkpoint() || result.checkpoints_checked() == 0) {
    return "the server checked the log against no signed checkpoint (is it run with "
           "--signing-key, and has it signed one yet? `logbook checkpoint --create`)";
  }
  const v1::SignedCheckpoint& c = result.latest_checkpoint();
  if (c.key_id() != logbook::store::KeyId(public_key)) {
    return absl::StrCat("checkpoint #", c.id(), " is signed by key ", Hex(c.key_id()),
                        ", not by this public key (", Hex(logbook::store::KeyId(public_key)),
                        ")");
  }
  const absl::Time created =
      absl::FromUnixSeconds(c.created_at().seconds()) + absl::Nanoseconds(c.created_at().nanos());
  if (!logbook::store::VerifySignature(
          public_key, logbook::store::CheckpointMessage(c.log_position(), c.log_hash(), created),
          c.signature())) {
    return absl::StrCat("the signature of checkpoint #", c.id(),
                        " does not verify with this public key");
  }
  return "";
}

int RunVerify(const Connection& conn, const std::string& stream, bool all, bool as_json,
              const std::string& public_key_file) {
  if (all == !stream.empty()) return Usage("verify: give a stream id or --all, exactly one");
  std::string public_key;
  if (!public_key_file.empty()) {
    if (!all) return Usage("verify: --public-key checks the checkpoints of --all");
    std::ifstream in(public_key_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    absl::StatusOr<std::string> key = logbook::store::PublicKeyFromPem(pem.str());
    if (!key.ok()) return Usage(absl::StrCat("--public-key ", public_key_file, ": ",
                                             key.status().message()));
    public_key = *std::move(key);
  }
  v1::VerifyRequest request;
  if (all) {
    request.mutable_all();
  } else {
    request.set_stream_id(stream);
  }
  absl::StatusOr<v1::VerifyResult> result;
  {
    ProgressReporter progress(all ? "the whole log" : stream);
    result = conn.Client().Verify(request,
                                  [&](const v1::VerifyProgress& p) { progress.Update(p); });
  }
  if (!result.ok()) return Fail(result.status());
  const v1::BrokenEvent& broken = result->first_broken();
  const std::string unproven =
      public_key.empty() || !result->ok() ? "" : CheckSignedCheckpoint(*result, public_key);
  const v1::SignedCheckpoint& checkpoint = result->latest_checkpoint();
  if (as_json) {
    json j = {{"ok", result->ok() && unproven.empty()},
              {"events_checked", result->events_checked()},
              {"streams_checked", result->streams_checked()}};
    if (result->has_head_hash()) j["head_hash"] = Hex(result->head_hash());
    if (all) j["whole_log"] = result->whole_log();
    if (result->checkpoints_checked() > 0) {
      j["checkpoints_checked"] = result->checkpoints_checked();
      j["latest_checkpoint"] = {{"id", checkpoint.id()},
                                {"log_position", checkpoint.log_position()},
                                {"log_hash", Hex(checkpoint.log_hash())},
                                {"key_id", Hex(checkpoint.key_id())}};
    }
    if (!unproven.empty()) j["not_proven"] = unproven;
    if (result->has_first_broken()) {
      j["first_broken"] = {{"stream_id", broken.stream_id()},
                           {"stream_version", broken.stream_version()},
                           {"global_position", broken.global_position()},
                           {"reason", v1::BreakReason_Name(broken.reason())},
                           {"detail", broken.detail()}};
    }
    std::cout << j.dump() << "\n";
  } else if (!unproven.empty()) {
    std::cout << "NOT PROVEN: " << unproven << "\n";
  } else if (result->ok()) {
    std::cout << "ok: " << result->events_checked() << " events";
    if (all) {
      std::cout << " in " << result->streams_checked()
                << (result->streams_checked() == 1 ? " stream" : " streams");
      // Other tenants' positions are holes in this one's view.
      if (!result->whole_log()) std::cout << " of this tenant (other tenants share the log)";
    }
    if (result->has_head_hash()) std::cout << ", head " << Hex(result->head_hash());
    if (result->checkpoints_checked() > 0) {
      std::cout << "; " << result->checkpoints_checked() << " signed checkpoint"
                << (result->checkpoints_checked() == 1 ? "" : "s") << " match, the newest #"
                << checkpoint.id() << " at position " << checkpoint.log_position();
      if (!public_key.empty()) std::cout << " (signature verified with the public key)";
    }
    std::cout << "\n";
  } else {
    if (broken.stream_id().empty()) {  // A checkpoint's break: a position, no event.
      std::cout << "BROKEN at position " << broken.global_position();
    } else {
      std::cout << "BROKEN at " << broken.stream_id() << "@" << broken.stream_version()
                << " (position " << broken.global_position() << ")";
    }
    std::cout << ": " << v1::BreakReason_Name(broken.reason()) << ": " << broken.detail() << "\n";
  }
  return result->ok() && unproven.empty() ? kOk : kTampered;
}

int RunCheckpoint(const Connection& conn, bool create, bool as_json) {
  v1::CheckpointRequest request;
  request.set_create(create);
  v1::SignedCheckpoint c;
  grpc::ClientContext ctx;
  conn.Prepare(ctx);
  grpc::Status status = conn.Stub()->Checkpoint(&ctx, request, &c);
  if (!status.ok()) return Fail(status);
  if (as_json) {
    std::cout << json{{"id", c.id()},
                      {"log_position", c.log_position()},
                      {"log_hash", Hex(c.log_hash())},
                      {"created_at", Rfc3339(c.created_at())},
                      {"key_id", Hex(c.key_id())},
                      {"signature", Hex(c.signature())}}
                     .dump()
              << "\n";
  } else {
    std::cout << "checkpoint #" << c.id() << " at position " << c.log_position() << ", "
              << Rfc3339(c.created_at()) << "\n  log hash  " << Hex(c.log_hash())
              << "\n  key id    " << Hex(c.key_id()) << "\n  signature " << Hex(c.signature())
              << "\n";
  }
  return kOk;
}

struct DeleteArgs {
  std::string stream, expect = "any";
  bool tombstone = false, json = false;
};

int RunDelete(const Connection& conn, const DeleteArgs& a) {
  v1::ExpectedVersion expected;
  if (!ParseExpect(a.expect, &expected)) {
    return Usage("delete: --expect takes any, exists or a version number");
  }
  auto deleted = conn.Client().DeleteStream(a.stream, expected, a.tombstone);
  if (!deleted.ok()) return Fail(deleted.status());
  if (a.json) {
    std::cout << json{{"stream_id", a.stream},
                      {"tombstone", a.tombstone},
                      {"deleted_version", deleted->deleted_version()},
                      {"audit_position", deleted->audit_position()}}
                     .dump()
              << "\n";
  } else {
    std::cout << (a.tombstone ? "tombstoned " : "deleted ") << a.stream << " at version "
              << deleted->deleted_version() << " (audit position " << deleted->audit_position()
              << ")\n";
  }
  return kOk;
}

struct RedactArgs {
  std::string stream, reason, admin_token;
  uint64_t version = 0;
};

int RunRedact(const Connection& conn, const RedactArgs& a) {
  if (a.admin_token.empty() && conn.token.empty()) {
    return Usage(
        "redact: needs the admin role: give --admin-token (LOGBOOK_ADMIN_TOKEN), or --token "
        "(LOGBOOK_TOKEN) of a principal with the admin role");
  }
  auto redacted = conn.Client().RedactEvent(a.stream, a.version, a.reason, a.admin_token);
  if (!redacted.ok()) return Fail(redacted.status());
  std::cout << "redacted " << a.stream << "@" << a.version << " (position "
            << redacted->global_position() << ", audit position " << redacted->audit_position()
            << ")\n";
  return kOk;
}

struct TokenArgs {
  std::string principal;
  std::vector<std::string> roles;
  std::string scopes = "*";
  std::string tenant = "-";
  std::string quotas;  // Empty: the server's defaults.
};

// A new random token, and the tokens-file line that gives it to a principal.
int RunTokenCreate(const TokenArgs& a) {
  if (a.tenant == "*" && std::find(a.roles.begin(), a.roles.end(), "admin") == a.roles.end()) {
    return Usage("auth token create: --tenant '*' (every tenant) is for principals with the "
                 "admin role");
  }
  if (a.tenant != "-" && a.tenant != "*") {
    if (absl::Status valid = logbook::store::ValidateTenant("--tenant", a.tenant); !valid.ok()) {
      return Usage("auth token create: " + std::string(valid.message()));
    }
  }
  unsigned char secret[32];
  if (RAND_bytes(secret, sizeof(secret)) != 1) {
    return Fail(absl::InternalError("no randomness for a token (RAND_bytes failed)"));
  }
  const std::string token =
      "lbk_" + absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(secret),
                                                        sizeof(secret)));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  std::cout << token << "\n"
            << absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest),
                                                        sizeof(digest)))
            << " " << a.principal << " " << absl::StrJoin(a.roles, ",") << " " << a.tenant
            << " " << a.scopes
            << (a.quotas.empty() ? "" : " ") << a.quotas << "\n";
  std::cerr << "-- the first line is the token: give it to " << a.principal
            << " (LOGBOOK_TOKEN); it is shown only now.\n"
            << "-- the second goes into logbookd's --auth-tokens file (then SIGHUP logbookd); "
               "it holds no secret.\n";
  return kOk;
}

struct SnapshotArgs {
  std::string stream, data, data_file, output;
  uint64_t version = 0, max_version = 0;
  uint32_t schema = 0;
  bool json = false;
};

int RunSnapshotSave(const Connection& conn, const SnapshotArgs& a, CLI::App& cmd) {
  absl::StatusOr<std::string> state = ReadInput("snapshot save", cmd, a.data, a.data_file);
  if (!state.ok()) return Usage(std::string(state.status().message()));
  auto saved = conn.Client().SaveSnapshot(a.stream, a.version, a.schema, *std::move(state));
  if (!saved.ok()) return Fail(saved.status());
  std::cout << "saved a snapshot of " << a.stream << " at version " << a.version << " (schema "
            << a.schema << ")\n";
  return kOk;
}

int RunSnapshotLoad(const Connection& conn, const SnapshotArgs& a, CLI::App& cmd) {
  v1::LoadSnapshotRequest request;
  request.set_stream_id(a.stream);
  if (cmd.count("--max-version")) request.set_max_version(a.max_version);
  if (cmd.count("--schema")) request.set_schema_version(a.schema);
  auto snapshot = conn.Client().LoadSnapshot(request);
  if (!snapshot.ok()) return Fail(snapshot.status());
  if (!a.output.empty()) {
    std::ofstream out(a.output, std::ios::binary | std::ios::trunc);
    out << snapshot->state();
    if (!out.flush()) return Fail(absl::UnknownError("snapshot load: cannot write " + a.output));
  }
  // The state as JSON when it is JSON, else like event data.
  const std::string json_type = logbook::store::kJsonContentType;
  if (a.json) {
    std::cout << json{{"stream_id", snapshot->stream_id()},
                      {"stream_version", snapshot->stream_version()},
                      {"schema_version", snapshot->schema_version()},
                      {"created_at", Rfc3339(snapshot->created_at())},
                      {"state", PayloadJson(json_type, snapshot->state())}}
                     .dump()
              << "\n";
  } else {
    std::cout << snapshot->stream_id() << "@" << snapshot->stream_version() << "  schema "
              << snapshot->schema_version() << "  " << Rfc3339(snapshot->created_at()) << "  "
              << PayloadText(json_type, snapshot->state()) << "\n";
  }
  return kOk;
}

struct MigrateArgs {
  std::string database, dir;
  bool reapply_definitions = false;
};

absl::StatusOr<logbook::store::MigrationSet> KnownMigrations(const MigrateArgs& a) {
  if (a.dir.empty()) return logbook::store::EmbeddedMigrations();
  return logbook::store::LoadMigrationsFromDir(a.dir);
}

int RunMigrate(const std::string& action, const MigrateArgs& a) {
  using logbook::store::MigrationState;
  auto known = KnownMigrations(a);
  if (!known.ok()) return Fail(known.status());
  if (action == "up") {
    const auto start = absl::Now();
    auto applied = logbook::store::MigrateUp(
        a.database, *known,
        [](const auto& m) { std::cout << "applying " << m.name << " ..." << std::endl; },
        a.reapply_definitions);
    if (!applied.ok()) return Fail(applied.status());
    if (applied->versioned.empty() && applied->definitions.empty()) {
      std::cout << "already up to date: schema version " << known->latest_version() << "\n";
    } else {
      std::cout << "applied " << applied->versioned.size() << " migration(s) and "
                << applied->definitions.size() << " definition(s) in "
                << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1)))
                << "; schema version " << known->latest_version() << "\n";
    }
    return kOk;
  }
  auto states = logbook::store::MigrationStatus(a.database, *known);
  if (!states.ok()) return Fail(states.status());
  int edited = 0, pending = 0, applied = 0, definitions = 0, to_apply = 0;
  std::set<std::string> outdated;  // Definitions `migrate up` would apply.
  for (const MigrationState& s : *states) {
    const bool definition = s.version == 0;
    const char* label = "pending";
    switch (s.state) {
      case MigrationState::State::kApplied:
        label = "applied";
        ++(definition ? definitions : applied);
        break;
      case MigrationState::State::kPending:
        label = "pending";
        ++(definition ? to_apply : pending);
        if (definition) outdated.insert(s.name);
        break;
      case MigrationState::State::kEdited: label = "EDITED after it was applied"; ++edited; break;
      case MigrationState::State::kChanged:
        label = "changed since it was applied (migrate up applies it again)";
        ++to_apply;
        outdated.insert(s.name);
        break;
      case MigrationState::State::kUnknown: label = "applied, unknown to this binary"; break;
    }
    if (action == "status" || s.state == MigrationState::State::kEdited) {
      std::cout << s.name << "  " << label;
      if (!s.applied_at.empty()) std::cout << "  " << s.applied_at;
      std::cout << "\n";
    }
  }
  if (action == "verify") {
    if (edited > 0) {
      std::cerr << "logbook: " << edited << " applied migration(s) differ from their files\n";
      return kPrecondition;
    }
    std::cout << "ok: " << applied << " applied migration(s) match their files, " << pending
              << " pending\n";
    // What the database holds must be what the recorded files define; a
    // file not applied yet is pending, not a fault.
    auto drift = logbook::store::FindDefinitionDrift(a.database, *known);
    if (!drift.ok()) return Fail(drift.status());
    int differ = 0;
    for (const logbook::store::DefinitionDrift& d : *drift) {
      if (outdated.count(d.file) != 0) continue;
      std::cout << (d.file.empty() ? "" : d.file + ": ") << d.object << " " << d.problem << "\n";
      ++differ;
    }
    if (differ > 0) {
      std::cerr << "logbook: " << differ << " function(s) or view(s) in the database differ "
                << "from the definitions recorded as applied; `logbook migrate up "
                << "--reapply-definitions` restores them\n";
      return kPrecondition;
    }
    std::cout << "ok: " << definitions << " definition(s) match the database, " << to_apply
              << " to apply\n";
  }
  return kOk;
}

// Consumer groups: `logbook group ...` and `logbook consume`.

// "stream order-1", "category order" or "$all", then the filter if any.
std::string TargetText(const v1::ConsumerGroupTarget& t) {
  std::string text;
  switch (t.kind_case()) {
    case v1::ConsumerGroupTarget::kStreamId: text = "stream " + t.stream_id(); break;
    case v1::ConsumerGroupTarget::kCategory: text = "category " + t.category(); break;
    case v1::ConsumerGroupTarget::kAll: text = "$all"; break;
    default: text = "?"; break;
  }
  if (t.has_filter()) {
    if (!t.filter().category().empty()) {
      absl::StrAppend(&text, ", category ", t.filter().category());
    }
    if (!t.filter().stream_prefix().empty()) {
      absl::StrAppend(&text, ", prefix ", t.filter().stream_prefix());
    }
    if (t.filter().event_types_size() > 0) {
      absl::StrAppend(&text, ", types ", absl::StrJoin(t.filter().event_types(), ","));
    }
  }
  return text;
}

std::string SettingsText(const v1::ConsumerGroupSettings& s) {
  return absl::StrCat(StrategyName(s.strategy()), ", ack timeout ", s.ack_timeout_ms(),
                      " ms, max deliveries ", s.max_deliveries(), ", retry backoff ",
                      s.retry_backoff_ms(), " to ", s.retry_backoff_max_ms(),
                      " ms, max in flight ", s.max_in_flight());
}

void PrintGroup(const v1::ConsumerGroupInfo& g) {
  const v1::ConsumerGroupSettings& s = g.settings();
  std::cout << "group                 " << g.group() << "\n"
            << "target                " << TargetText(g.target()) << "\n"
            << "strategy              " << StrategyName(s.strategy()) << "\n"
            << "ack timeout           " << s.ack_timeout_ms() << " ms\n"
            << "max deliveries        " << s.max_deliveries() << "\n"
            << "retry backoff         " << s.retry_backoff_ms() << " ms, at most "
            << s.retry_backoff_max_ms() << " ms\n"
            << "max in flight         " << s.max_in_flight() << "\n"
            << "checkpoint            " << g.checkpoint_position() << "\n"
            << "head                  " << g.head_position() << "\n"
            << "lag                   " << g.lag_events() << " events, "
            << absl::StrFormat("%.3f", g.lag_seconds()) << " s\n"
            << "in flight             " << g.in_flight() << "\n"
            << "parked                " << g.parked();
  if (g.parked() > 0) {
    std::cout << " (oldest " << absl::StrFormat("%.3f", g.oldest_parked_age_seconds())
              << " s ago)";
  }
  std::cout << "\n"
            << "delivered             " << g.delivered() << "\n"
            << "acked                 " << g.acked() << "\n"
            << "created at            " << Rfc3339(g.created_at()) << "\n"
            << "members               " << g.members_size() << "\n";
  for (const v1::ConsumerGroupMember& m : g.members()) {
    std::cout << "  " << m.consumer() << "  on " << m.instance() << ", " << m.in_flight()
              << " in flight, " << m.streams_owned() << " streams owned, connected at "
              << Rfc3339(m.connected_at()) << "\n";
  }
}

// The settings flags of `group create` and `group update`; each one given
// is set in the request, the others left unset.
struct GroupSettingsArgs {
  std::string strategy;
  uint32_t ack_timeout_ms = 0, max_deliveries = 0, retry_backoff_ms = 0,
           retry_backoff_max_ms = 0, max_in_flight = 0;

  // `create`: the help names the defaults; else (update) a setting left
  // out stays as it is.
  void Add(CLI::App* cmd, bool create) {
    // "(default D; RANGE)" for create, "(RANGE)" for update.
    auto range = [create](const char* default_value, const char* limits) {
      return create ? absl::StrCat(" (default ", default_value, "; ", limits, ")")
                    : absl::StrCat(" (", limits, ")");
    };
    cmd->add_option("--strategy", strategy,
                    std::string("per-stream: a stream's events to one consumer at a time, in "
                                "order; round-robin: any event to any consumer") +
                        (create ? " (default per-stream)" : ""))
        ->check(CLI::IsMember({"per-stream", "round-robin"}))
        ->default_str("");
    cmd->add_option("--ack-timeout-ms", ack_timeout_ms,
                    "A delivery not acked or nacked within this many ms is delivered again" +
                        range("30000", "100 to 3600000"))
        ->default_str("");
    cmd->add_option("--max-deliveries", max_deliveries,
                    "Deliveries of one event before it is parked" + range("10", "1 to 1000"))
        ->default_str("");
    cmd->add_option("--retry-backoff-ms", retry_backoff_ms,
                    "A retry waits this many ms, doubling per delivery" +
                        range("1000", "0 to 3600000"))
        ->default_str("");
    cmd->add_option("--retry-backoff-max-ms", retry_backoff_max_ms,
                    "...up to this many ms" + range("60000", "0 to 3600000, at least the first"))
        ->default_str("");
    cmd->add_option("--max-in-flight", max_in_flight,
                    "Unacked deliveries per consumer" + range("100", "1 to 10000"))
        ->default_str("");
  }

  // Whether any was given.
  bool Fill(CLI::App& cmd, v1::ConsumerGroupSettings* s) const {
    if (cmd.count("--strategy")) {
      s->set_strategy(strategy == "round-robin" ? v1::ROUND_ROBIN : v1::PER_STREAM);
    }
    if (cmd.count("--ack-timeout-ms")) s->set_ack_timeout_ms(ack_timeout_ms);
    if (cmd.count("--max-deliveries")) s->set_max_deliveries(max_deliveries);
    if (cmd.count("--retry-backoff-ms")) s->set_retry_backoff_ms(retry_backoff_ms);
    if (cmd.count("--retry-backoff-max-ms")) s->set_retry_backoff_max_ms(retry_backoff_max_ms);
    if (cmd.count("--max-in-flight")) s->set_max_in_flight(max_in_flight);
    return s->ByteSizeLong() > 0;
  }
};

struct GroupArgs {
  std::string group, stream, category, prefix;
  std::vector<std::string> types;
  bool all = false, from_beginning = false, from_now = false, json = false;
  uint64_t after_position = 0, after = 0;
  uint32_t max_count = 0;
  std::vector<uint64_t> ids;
  GroupSettingsArgs settings;
};

int RunGroupCreate(const Connection& conn, const GroupArgs& a, CLI::App& cmd) {
  v1::CreateConsumerGroupRequest request;
  request.set_group(a.group);
  v1::ConsumerGroupTarget* target = request.mutable_target();
  if (cmd.count("--stream") + cmd.count("--category") + (a.all ? 1 : 0) != 1) {
    return Usage("group create: give --stream, --category or --all, exactly one");
  }
  if (cmd.count("--stream")) {
    target->set_stream_id(a.stream);
  } else if (cmd.count("--category")) {
    target->set_category(a.category);
  } else {
    target->mutable_all();
  }
  if (cmd.count("--prefix")) target->mutable_filter()->set_stream_prefix(a.prefix);
  for (const auto& t : a.types) target->mutable_filter()->add_event_types(t);
  if (cmd.count("--from-beginning") + cmd.count("--after-position") + cmd.count("--from-now") > 1) {
    return Usage("group create: give at most one of --from-beginning, --after-position and "
                 "--from-now");
  }
  if (a.from_now) {
    request.mutable_from_now();
  } else if (cmd.count("--after-position")) {
    request.set_after_position(a.after_position);
  } else {
    request.mutable_from_beginning();
  }
  a.settings.Fill(cmd, request.mutable_settings());
  auto created = conn.Client().CreateConsumerGroup(request);
  if (!created.ok()) return Fail(created.status());
  if (a.json) {
    std::cout << GroupJson(*created).dump() << "\n";
  } else {
    std::cout << "created group " << created->group() << " on " << TargetText(created->target())
              << ": " << SettingsText(created->settings()) << "\n";
  }
  return kOk;
}

int RunGroupUpdate(const Connection& conn, const GroupArgs& a, CLI::App& cmd) {
  v1::ConsumerGroupSettings settings;
  if (!a.settings.Fill(cmd, &settings)) {
    return Usage("group update: give at least one setting to change");
  }
  auto updated = conn.Client().UpdateConsumerGroup(a.group, settings);
  if (!updated.ok()) return Fail(updated.status());
  if (a.json) {
    std::cout << GroupJson(*updated).dump() << "\n";
  } else {
    std::cout << "updated group " << updated->group() << ": " << SettingsText(updated->settings())
              << "\n";
  }
  return kOk;
}

int RunGroupDelete(const Connection& conn, const GroupArgs& a) {
  absl::Status deleted = conn.Client().DeleteConsumerGroup(a.group);
  if (!deleted.ok()) return Fail(deleted);
  std::cout << "deleted group " << a.group << "\n";
  return kOk;
}

int RunGroupList(const Connection& conn, const GroupArgs& a) {
  auto groups = conn.Client().ListConsumerGroups();
  if (!groups.ok()) return Fail(groups.status());
  for (const v1::ConsumerGroupInfo& g : *groups) {
    if (a.json) {
      std::cout << GroupJson(g).dump() << "\n";
    } else {
      std::cout << g.group() << "  " << TargetText(g.target()) << "  "
                << StrategyName(g.settings().strategy()) << "  checkpoint "
                << g.checkpoint_position() << "  lag " << g.lag_events() << "  in flight "
                << g.in_flight() << "  parked " << g.parked() << "  members " << g.members_size()
                << "\n";
    }
  }
  return kOk;
}

int RunGroupInfo(const Connection& conn, const GroupArgs& a) {
  auto group = conn.Client().GetConsumerGroup(a.group);
  if (!group.ok()) return Fail(group.status());
  if (a.json) {
    std::cout << GroupJson(*group).dump() << "\n";
  } else {
    PrintGroup(*group);
  }
  return kOk;
}

int RunGroupParked(const Connection& conn, const GroupArgs& a) {
  auto page = conn.Client().ListParked(a.group, a.after, a.max_count);
  if (!page.ok()) return Fail(page.status());
  for (const v1::ParkedEvent& p : page->parked()) {
    if (a.json) {
      std::cout << logbook::json::ParkedJson(p).dump() << "\n";
    } else {
      std::cout << p.delivery_id() << "  " << p.stream_id() << "@" << p.stream_version() << "  "
                << p.event_type() << "  attempts " << p.attempts() << "  "
                << Rfc3339(p.parked_at()) << "  " << p.reason() << "\n";
    }
  }
  if (page->has_next_after()) {
    std::cerr << "-- more: --after " << page->next_after() << "\n";
  }
  return kOk;
}

// `group replay` and `group drop`.
int RunGroupSettle(const Connection& conn, const GroupArgs& a, bool replay) {
  const char* what = replay ? "replay" : "drop";
  if (a.all == !a.ids.empty()) {
    return Usage(absl::StrCat("group ", what, ": give --all or delivery ids, exactly one"));
  }
  v1::ParkedSelection selection;
  selection.set_group(a.group);
  if (a.all) {
    selection.mutable_all();
  } else {
    selection.mutable_ids()->mutable_delivery_ids()->Add(a.ids.begin(), a.ids.end());
  }
  logbook::Client client = conn.Client();
  auto count = replay ? client.ReplayParked(selection) : client.DropParked(selection);
  if (!count.ok()) return Fail(count.status());
  std::cout << (replay ? "replayed " : "dropped ") << *count << " parked event"
            << (*count == 1 ? "" : "s") << "\n";
  return kOk;
}

struct ConsumeArgs {
  std::string group, consumer;
  std::vector<std::string> fail_types, park_types, hold_types;
  uint32_t max_in_flight = 0;
  uint64_t count = 0;
  bool json = false;
};

int RunConsume(const Connection& conn, const ConsumeArgs& a, CLI::App& cmd) {
  // SIGINT and SIGTERM are blocked in every thread (gRPC's inherit the
  // mask) and taken by a thread of our own, which stops the worker.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  logbook::Client client = conn.Client();
  logbook::WorkerOptions worker_options;
  worker_options.group = a.group;
  worker_options.consumer = a.consumer;
  worker_options.max_in_flight = a.max_in_flight;
  if (a.count > 0 && !cmd.count("--max-in-flight")) {
    // Take no more than --count at a time: deliveries taken and not handled
    // would count as attempts when they go back. Unreachable now: the
    // group's max_in_flight, once the worker gets through.
    auto group = client.GetConsumerGroup(a.group);
    if (group.ok()) {
      worker_options.max_in_flight = static_cast<uint32_t>(
          std::min<uint64_t>(a.count, group->settings().max_in_flight()));
    } else if (!absl::IsUnavailable(group.status()) &&
               !absl::IsDeadlineExceeded(group.status())) {
      return Fail(group.status());
    }
  }
  worker_options.on_joined = [&](const v1::ConsumerJoined& joined) {
    std::cerr << "-- joined group " << a.group << " as " << a.consumer << " on "
              << joined.instance() << ", max in flight " << joined.max_in_flight()
              << " (Ctrl-C to stop)" << std::endl;
  };
  worker_options.on_assignment = [](const v1::ConsumerAssignment& assignment) {
    std::cerr << "-- owns " << assignment.streams_owned() << " stream"
              << (assignment.streams_owned() == 1 ? "" : "s") << " with pending events ("
              << assignment.members_size() << " live member"
              << (assignment.members_size() == 1 ? "" : "s") << ": "
              << absl::StrJoin(assignment.members(), ", ") << ")";
    if (assignment.stream_ids_size() > 0) {
      std::cerr << ": " << absl::StrJoin(assignment.stream_ids(), ", ");
      if (static_cast<uint64_t>(assignment.stream_ids_size()) < assignment.streams_owned()) {
        std::cerr << ", ...";
      }
    }
    std::cerr << std::endl;
  };
  worker_options.on_disconnected = [](const absl::Status& status, absl::Duration backoff) {
    std::cerr << "-- disconnected: " << status.message() << "; joining again in "
              << absl::FormatDuration(backoff) << std::endl;
  };
  const std::set<std::string> fail(a.fail_types.begin(), a.fail_types.end());
  const std::set<std::string> park(a.park_types.begin(), a.park_types.end());
  const std::set<std::string> hold(a.hold_types.begin(), a.hold_types.end());
  absl::Notification stopping;  // A signal came: held events are let go.
  uint64_t handled = 0;
  std::unique_ptr<logbook::Worker> worker;
  worker = std::make_unique<logbook::Worker>(
      client, worker_options, [&](const v1::Delivery& d) -> absl::Status {
        const v1::RecordedEvent& e = d.event();
        absl::Status status;
        const char* action = "ack";
        if (park.count(e.type())) {
          status = logbook::Park("type " + e.type() + " is in --park-types");
          action = "park";
        } else if (fail.count(e.type())) {
          status = absl::UnknownError("type " + e.type() + " is in --fail-types");
          action = "retry";
        } else if (hold.count(e.type())) {
          status = absl::UnknownError("type " + e.type() + " is in --hold-types");
          action = "hold";
        }
        if (a.json) {
          std::cout << json{{"delivery_id", d.delivery_id()},
                            {"attempt", d.attempt()},
                            {"action", action},
                            {"handled_at_ns", absl::ToUnixNanos(absl::Now())},
                            {"event", EventJson(e)}}
                           .dump()
                    << std::endl;
        } else {
          std::cout << d.delivery_id() << "  " << e.stream_id() << "@" << e.stream_version()
                    << "  " << e.type() << "  attempt " << d.attempt() << "  " << action
                    << std::endl;
        }
        // Held: kept, unsettled, until a signal stops the worker (then
        // nacked RETRY).
        if (hold.count(e.type())) stopping.WaitForNotification();
        if (a.count > 0 && ++handled >= a.count) worker->Stop();
        return status;
      });
  std::thread stopper([&signals, &worker, &stopping] {
    int received = 0;
    sigwait(&signals, &received);
    stopping.Notify();
    worker->Stop();
  });
  const absl::Status status = worker->Run();
  // Wakes the stopper if no signal did (Stop() is idempotent).
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return status.ok() ? kOk : Fail(status);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"logbook: the Logbook event store client"};
  app.require_subcommand(1);
  // The options above the commands (--address, --timeout, TLS, --token,
  // --tenant) are taken after them too: `logbook verify order-1 --address h:p`.
  app.fallthrough();
  app.option_defaults()->always_capture_default();
  Connection conn;
  app.add_option("--address", conn.address, "logbookd address, host:port")
      ->envname("LOGBOOK_ADDRESS");
  app.add_option("--timeout", conn.timeout_seconds, "Seconds before a call gives up")
      ->check(CLI::PositiveNumber);
  app.add_option("--tls-ca", conn.tls_ca,
                 "Speak TLS, trusting the CAs in this PEM file (with --tls-cert alone: the "
                 "system's CAs)")
      ->envname("LOGBOOK_TLS_CA");
  app.add_option("--tls-cert", conn.tls_cert,
                 "Speak TLS and present this PEM client certificate (mTLS); needs --tls-key")
      ->envname("LOGBOOK_TLS_CERT");
  app.add_option("--tls-key", conn.tls_key, "PEM key of --tls-cert")
      ->envname("LOGBOOK_TLS_KEY");
  app.add_option("--token", conn.token,
                 "Bearer token sent with every call (logbookd with --auth-tokens requires one; "
                 "`logbook auth token create` makes them)")
      ->envname("LOGBOOK_TOKEN");
  app.add_option("--tenant", conn.tenant,
                 "Tenant whose streams the command works on, for a cross-tenant principal "
                 "(default: the token's own tenant, or 'default')")
      ->envname("LOGBOOK_TENANT");

  AppendArgs append;
  CLI::App* append_cmd = app.add_subcommand("append", "Append one event to a stream");
  append_cmd->add_option("stream", append.stream, "Stream id, e.g. order-42")->required();
  append_cmd->add_option("--type", append.type, "Event type, e.g. OrderPlaced")->required();
  append_cmd->add_option("--data", append.data, "Event data (JSON unless --content-type)");
  append_cmd->add_option("--data-file", append.data_file, "Read the event data from a file");
  append_cmd->add_option("--metadata", append.metadata, "Event metadata bytes");
  append_cmd->add_option("--content-type", append.content_type,
                         "Content type of the data (default application/json)");
  append_cmd->add_option("--expect", append.expect,
                         "Expected stream version: any, none, exists or a number");
  append_cmd->add_option("--event-id", append.event_id, "Event UUID (default: generated)");
  append_cmd->add_option("--correlation-id", append.correlation_id, "Correlation id");
  append_cmd->add_option("--causation-id", append.causation_id, "Causation id");
  append_cmd->add_option("--traceparent", append.traceparent,
                         "W3C trace context of this append (00-<trace id>-<parent id>-<flags>), "
                         "stored with the event and returned on reads");
  append_cmd->add_option("--schema-version", append.schema_version,
                         "Version of the event's schema, stored and returned on reads "
                         "(default: none)");
  append_cmd->add_flag("--json", append.json,
                       "Print the result as JSON (with the stream's head hash and the events "
                       "since its newest snapshot)");
  append_cmd->footer("Data comes from --data, --data-file, or stdin when it is not a terminal.");

  ReadArgs read;
  CLI::App* read_cmd = app.add_subcommand("read", "Read a stream or '$all'");
  read_cmd->add_option("target", read.target, "Stream id, or '$all' for the global log")
      ->required();
  read_cmd->add_option("--from", read.from,
                       "First stream version (or global position for $all), inclusive");
  read_cmd->add_flag("--backward", read.backward, "Read newest first");
  read_cmd->add_option("--limit", read.limit, "Events at most (up to 100000)");
  read_cmd->add_option("--category", read.category, "$all only: events of this category");
  read_cmd->add_option("--prefix", read.prefix, "$all only: stream ids with this prefix");
  read_cmd->add_option("--type", read.types, "$all only: events of this type (repeatable)");
  read_cmd->add_option("--until", read.until,
                       "Time travel: only events at or below this stream version (global "
                       "position for $all)");
  read_cmd->add_option("--as-of", read.as_of,
                       "Time travel: only events recorded at or before this RFC 3339 time, "
                       "e.g. 2026-11-17T14:00:00Z");
  read_cmd->add_flag("--json", read.json, "One JSON object per line");
  read_cmd->footer("Redacted events show <redacted: REASON> instead of their data.");
  read_cmd->add_flag("--follow", read.follow,
                     "After the range, keep printing new events as they are appended");

  SubscribeArgs sub;
  CLI::App* sub_cmd = app.add_subcommand(
      "subscribe", "Print every event of a stream, a category or '$all', then follow live");
  sub_cmd->add_option("target", sub.target, "Stream id, or '$all' (omit with --category)");
  sub_cmd->add_option("--category", sub.category, "Subscribe to this category");
  sub_cmd->add_option("--from", sub.from,
                      "Start at this global position (stream version for a stream), "
                      "inclusive; default: the beginning");
  sub_cmd->add_flag("--now", sub.now, "Only events appended from now on");
  sub_cmd->add_option("--prefix", sub.prefix, "Only streams with this id prefix");
  sub_cmd->add_option("--type", sub.types, "Only events of this type (repeatable)");
  sub_cmd->add_option("--count", sub.count, "Exit after this many events (0: never)");
  sub_cmd->add_flag("--json", sub.json, "One JSON object per line");

  std::string stream_id;
  bool stream_json = false;
  CLI::App* stream_cmd = app.add_subcommand(
      "stream", "Show a stream's version, last position, state, first version and head hash");
  stream_cmd->add_option("stream", stream_id, "Stream id")->required();
  stream_cmd->add_flag("--json", stream_json, "Print as JSON");

  ListArgs list_streams, list_categories;
  CLI::App* streams_cmd = app.add_subcommand(
      "streams", "List streams in id order, with their version, last position and state");
  streams_cmd->add_option("--prefix", list_streams.prefix, "Only stream ids starting with this");
  streams_cmd->add_option("--limit", list_streams.limit, "At most this many (0: every one)");
  streams_cmd->add_flag("--json", list_streams.json, "One JSON object per line");
  CLI::App* categories_cmd = app.add_subcommand(
      "categories", "List the categories of the streams that have events (stream ids up to '-')");
  categories_cmd->add_option("--prefix", list_categories.prefix,
                             "Only categories starting with this");
  categories_cmd->add_option("--limit", list_categories.limit, "At most this many (0: every one)");
  categories_cmd->add_flag("--json", list_categories.json, "One JSON string per line");

  std::string verify_stream;
  bool verify_all = false, verify_json = false;
  CLI::App* verify_cmd = app.add_subcommand(
      "verify", "Check the receipts (hash chain) of a stream or of the whole log");
  verify_cmd->add_option("stream", verify_stream, "Stream id (omit with --all)");
  verify_cmd->add_flag("--all", verify_all, "Verify every stream and the global log");
  verify_cmd->add_flag("--json", verify_json, "Print the result as JSON");
  std::string verify_public_key;
  verify_cmd
      ->add_option("--public-key", verify_public_key,
                   "With --all: also require the newest signed checkpoint the server checked "
                   "the log against to be signed by this Ed25519 public key (PEM)")
      ->check(CLI::ExistingFile);
  verify_cmd->footer(
      "Prints 'ok: N events, head HEX' (--all: 'ok: N events in M streams') and exits 0, or "
      "'BROKEN at STREAM@VERSION (position P): REASON: DETAIL' naming the first broken event "
      "and exits 8 (CHECKPOINT_MISMATCH: the log no longer hashes to a checkpoint the server "
      "signed). With --public-key, 'NOT PROVEN: WHY' and exit 8 unless the newest checked "
      "checkpoint is signed by that key. Progress goes to stderr: a bar on a terminal, else a line per 10% of a "
      "long run.");

  bool checkpoint_create = false, checkpoint_json = false;
  CLI::App* checkpoint_cmd = app.add_subcommand(
      "checkpoint", "Show the newest signed checkpoint of the log, or sign one now");
  checkpoint_cmd->add_flag("--create", checkpoint_create,
                           "Have the server sign a checkpoint of the log's head now");
  checkpoint_cmd->add_flag("--json", checkpoint_json, "Print as JSON");

  DeleteArgs del;
  CLI::App* delete_cmd = app.add_subcommand(
      "delete", "Delete a stream: soft (written again, it continues) or a tombstone (for good)");
  delete_cmd->add_option("stream", del.stream, "Stream id")->required();
  delete_cmd->add_flag("--tombstone", del.tombstone,
                       "Delete for good: the stream can never be written again");
  delete_cmd->add_option("--expect", del.expect,
                         "Expected stream version: any, exists or a number");
  delete_cmd->add_flag("--json", del.json, "Print the result as JSON");
  delete_cmd->footer("The events stay in '$all'; the deletion is recorded in '$audit'.");

  RedactArgs redact;
  CLI::App* redact_cmd = app.add_subcommand(
      "redact", "Admin: empty an event's data and metadata, keeping its receipt valid");
  redact_cmd->add_option("stream", redact.stream, "Stream id")->required();
  redact_cmd->add_option("version", redact.version, "Stream version of the event")->required();
  redact_cmd->add_option("--reason", redact.reason, "Why (1-1024 bytes); stored and audited")
      ->required();
  redact_cmd->add_option("--admin-token", redact.admin_token, "logbookd's admin token")
      ->envname("LOGBOOK_ADMIN_TOKEN");
  redact_cmd->footer("The redaction is recorded as an EventRedacted event in '$audit'.");

  SnapshotArgs snap;
  CLI::App* snapshot_cmd = app.add_subcommand("snapshot", "Save or load a stream's snapshot");
  snapshot_cmd->require_subcommand(1);
  CLI::App* snap_save_cmd = snapshot_cmd->add_subcommand(
      "save", "Store a state of a stream as of a version");
  snap_save_cmd->add_option("stream", snap.stream, "Stream id")->required();
  snap_save_cmd->add_option("version", snap.version,
                            "Version of the stream's last event the state includes")
      ->required();
  snap_save_cmd->add_option("--schema", snap.schema, "Version of the state's format")
      ->required();
  snap_save_cmd->add_option("--data", snap.data, "The state bytes");
  snap_save_cmd->add_option("--data-file", snap.data_file, "Read the state from a file");
  snap_save_cmd->footer("The state comes from --data, --data-file, or stdin when it is not "
                        "a terminal.");
  CLI::App* snap_load_cmd = snapshot_cmd->add_subcommand(
      "load", "Print the newest snapshot of a stream at or below a version");
  snap_load_cmd->add_option("stream", snap.stream, "Stream id")->required();
  snap_load_cmd->add_option("--max-version", snap.max_version,
                            "Newest at or below this version (default: any)");
  snap_load_cmd->add_option("--schema", snap.schema, "Only of this schema version (default: any)");
  snap_load_cmd->add_option("--output", snap.output, "Also write the state bytes to this file");
  snap_load_cmd->add_flag("--json", snap.json, "Print as JSON");

  TokenArgs token;
  CLI::App* auth_cmd = app.add_subcommand("auth", "Credentials for logbookd's --auth-tokens file");
  auth_cmd->require_subcommand(1);
  CLI::App* auth_token_cmd = auth_cmd->add_subcommand("token", "Bearer tokens");
  auth_token_cmd->require_subcommand(1);
  CLI::App* token_create_cmd = auth_token_cmd->add_subcommand(
      "create", "Print a new token and the tokens-file line that gives it to a principal");
  token_create_cmd
      ->add_option("principal", token.principal, "Who the token is for, e.g. billing-service")
      ->required()
      ->check([](const std::string& p) -> std::string {
        const bool ok = !p.empty() && p.size() <= 128 &&
                        p.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789._-@:=/") == std::string::npos;
        return ok ? "" : "1 to 128 bytes of letters, digits and . _ - @ : = /";
      });
  token_create_cmd
      ->add_option("--roles", token.roles,
                   "Comma list of reader, writer, consumer, operator, admin")
      ->required()
      ->delimiter(',')
      ->check(CLI::IsMember({"reader", "writer", "consumer", "operator", "admin"}));
  token_create_cmd->add_option(
      "--tenant", token.tenant,
      "The principal's tenant: a name ([A-Za-z0-9._-], up to 64 bytes), '-' for the default "
      "tenant, or '*' for every tenant (admin only: it names one per call with --tenant)");
  token_create_cmd->add_option(
      "--scopes", token.scopes,
      "Streams it may touch: '*' (all), or a comma list of prefixes ending in '*' (orders-*) "
      "and categories (payments)");
  token_create_cmd
      ->add_option("--quotas", token.quotas,
                   "What it may hold at once, overriding logbookd's --quota-* defaults: a comma "
                   "list of subscriptions=N, consumers=N, appends=N (appends in flight; 0: no "
                   "limit)")
      ->check([](const std::string& q) -> std::string {
        for (absl::string_view item : absl::StrSplit(q, ',')) {
          const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, '=');
          uint32_t n = 0;
          if ((kv.first != "subscriptions" && kv.first != "consumers" &&
               kv.first != "appends") ||
              !absl::SimpleAtoi(kv.second, &n) || n > 1000000) {
            return absl::StrCat("'", item,
                                "' is not subscriptions=N, consumers=N or appends=N (N from 0 "
                                "to 1000000)");
          }
        }
        return "";
      });

  GroupArgs grp;
  CLI::App* group_cmd = app.add_subcommand(
      "group", "Manage consumer groups: competing consumers sharing a stream, category or '$all'");
  group_cmd->require_subcommand(1);
  CLI::App* group_create_cmd = group_cmd->add_subcommand(
      "create", "Create a consumer group on a stream, a category or '$all'");
  group_create_cmd->add_option("group", grp.group, "Group name, 1-128 of [A-Za-z0-9._-]")
      ->required();
  group_create_cmd->add_option("--stream", grp.stream, "Consume this stream");
  group_create_cmd->add_option("--category", grp.category,
                               "Consume this category (streams '<category>-...')");
  group_create_cmd->add_flag("--all", grp.all, "Consume the whole log");
  group_create_cmd->add_option("--prefix", grp.prefix, "Only streams with this id prefix");
  group_create_cmd->add_option("--type", grp.types, "Only events of this type (repeatable)");
  group_create_cmd->add_flag("--from-beginning", grp.from_beginning,
                             "Start at the target's first event (the default)");
  group_create_cmd->add_option("--after-position", grp.after_position,
                               "Start after this global position")
      ->default_str("");
  group_create_cmd->add_flag("--from-now", grp.from_now, "Only events appended from now on");
  grp.settings.Add(group_create_cmd, /*create=*/true);
  group_create_cmd->add_flag("--json", grp.json, "Print the new group as JSON");
  group_create_cmd->footer("Give --stream, --category or --all, exactly one. Settings left out "
                           "take the defaults shown; `group update` changes them later.");

  CLI::App* group_update_cmd =
      group_cmd->add_subcommand("update", "Change settings of a consumer group");
  group_update_cmd->add_option("group", grp.group, "Group name")->required();
  grp.settings.Add(group_update_cmd, /*create=*/false);
  group_update_cmd->add_flag("--json", grp.json, "Print the group as JSON");
  group_update_cmd->footer("Settings left out stay as they are; give at least one.");

  CLI::App* group_delete_cmd = group_cmd->add_subcommand(
      "delete", "Delete a consumer group with its deliveries and parked events");
  group_delete_cmd->add_option("group", grp.group, "Group name")->required();
  group_delete_cmd->footer("Its connected consumers' calls end with NOT_FOUND.");

  CLI::App* group_list_cmd = group_cmd->add_subcommand("list", "List the consumer groups");
  group_list_cmd->add_flag("--json", grp.json, "One JSON object per line");
  group_list_cmd->footer("One line per group: NAME  TARGET  STRATEGY  checkpoint P  lag N  "
                         "in flight N  parked N  members N.");

  CLI::App* group_info_cmd = group_cmd->add_subcommand(
      "info", "Show a group's settings, checkpoint, head, lag, in flight, parked, delivered, "
              "acked and members");
  group_info_cmd->add_option("group", grp.group, "Group name")->required();
  group_info_cmd->add_flag("--json", grp.json, "Print as JSON");

  CLI::App* group_parked_cmd = group_cmd->add_subcommand(
      "parked", "List a group's parked events, oldest position first");
  group_parked_cmd->add_option("group", grp.group, "Group name")->required();
  group_parked_cmd->add_option("--after", grp.after,
                               "Only delivery ids greater than this (the next page)");
  group_parked_cmd->add_option("--max-count", grp.max_count,
                               "Events at most (default: the server's 1000; up to 10000)");
  group_parked_cmd->add_flag("--json", grp.json, "One JSON object per line");
  group_parked_cmd->footer("One line per event: DELIVERY_ID  STREAM@VERSION  TYPE  attempts N  "
                           "PARKED_AT  REASON. When there are more, '-- more: --after N' goes "
                           "to stderr.");

  CLI::App* group_replay_cmd = group_cmd->add_subcommand(
      "replay", "Put parked events back for delivery, with their attempts reset");
  group_replay_cmd->add_option("group", grp.group, "Group name")->required();
  group_replay_cmd->add_option("ids", grp.ids, "Delivery ids of the parked events");
  group_replay_cmd->add_flag("--all", grp.all, "Every parked event of the group");

  CLI::App* group_drop_cmd = group_cmd->add_subcommand(
      "drop", "Forget parked events: they will not be delivered again");
  group_drop_cmd->add_option("group", grp.group, "Group name")->required();
  group_drop_cmd->add_option("ids", grp.ids, "Delivery ids of the parked events");
  group_drop_cmd->add_flag("--all", grp.all, "Every parked event of the group");

  ConsumeArgs consume;
  CLI::App* consume_cmd = app.add_subcommand(
      "consume", "Join a consumer group, print each event delivered and ack it");
  consume_cmd->add_option("group", consume.group, "Group name")->required();
  consume_cmd->add_option("--consumer", consume.consumer,
                          "This consumer's name, 1-128 of [A-Za-z0-9._-]; one connection per "
                          "name at a time")
      ->required();
  consume_cmd->add_option("--max-in-flight", consume.max_in_flight,
                          "Unacked deliveries at a time (default: the group's, or --count if "
                          "fewer)")
      ->default_str("");
  consume_cmd->add_option("--fail-types", consume.fail_types,
                          "Nack events of these types RETRY instead of acking them "
                          "(comma-separated)")
      ->delimiter(',');
  consume_cmd->add_option("--park-types", consume.park_types,
                          "Nack events of these types PARK instead of acking them "
                          "(comma-separated)")
      ->delimiter(',');
  consume_cmd->add_option("--hold-types", consume.hold_types,
                          "Keep events of these types without settling them until stopped, "
                          "then nack them RETRY (to practise ack timeouts and crashes; "
                          "comma-separated)")
      ->delimiter(',');
  consume_cmd->add_option("--count", consume.count,
                          "Exit after handling this many deliveries, acked or nacked (0: never)");
  consume_cmd->add_flag("--json", consume.json, "One JSON object per line");
  consume_cmd->footer(
      "Prints a line per delivery: DELIVERY_ID  STREAM@VERSION  TYPE  attempt N  ACTION, where "
      "ACTION is ack, retry, park or hold (--json: delivery_id, attempt, action, "
      "handled_at_ns and the event). "
      "Reconnects by itself when the server is unreachable; exits 0 after --count deliveries "
      "or on SIGINT/SIGTERM, once its acks are sent.");

  MigrateArgs migrate;
  std::string migrate_action;
  CLI::App* migrate_cmd = app.add_subcommand(
      "migrate", "Install or upgrade the database schema (talks to PostgreSQL directly)");
  migrate_cmd->add_option("action", migrate_action,
                          "up: apply pending migrations and changed definitions; status: list "
                          "them; verify: check applied migrations are unedited and the "
                          "database's functions and views are the definitions' (needs the "
                          "owner role)")
      ->required()
      ->check(CLI::IsMember({"up", "status", "verify"}));
  migrate_cmd->add_option("--database", migrate.database, "PostgreSQL connection string or URL")
      ->envname("LOGBOOK_DATABASE_URL")
      ->required();
  migrate_cmd->add_flag("--reapply-definitions", migrate.reapply_definitions,
                        "up: apply every function and view definition, changed or not (restores "
                        "ones edited by hand, which verify names)");
  migrate_cmd->add_option("--migrations-dir", migrate.dir,
                          "Read NNNN_*.sql, functions/*.sql and views/*.sql from this folder "
                          "instead of the copies built into this binary");

  // Last, so that the script it prints covers every command, itself too.
  std::string completion_shell;
  CLI::App* completion_cmd =
      app.add_subcommand("completion",
                         "Print a shell completion script: source it, or install it as "
                         "share/bash-completion/completions/logbook (cmake --install does)");
  completion_cmd->add_option("shell", completion_shell, "The shell: bash")
      ->required()
      ->check(CLI::IsMember({"bash"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  }
  if (completion_cmd->parsed()) {
    std::cout << logbook::cli::BashCompletion(app, "logbook");
    return kOk;
  }
  if (!conn.tls_ca.empty() || !conn.tls_cert.empty() || !conn.tls_key.empty()) {
    auto tls = logbook::LoadClientTls(conn.tls_ca, conn.tls_cert, conn.tls_key);
    if (!tls.ok()) return Fail(tls.status());
    conn.tls = *std::move(tls);
  }
  if (token_create_cmd->parsed()) return RunTokenCreate(token);
  if (append_cmd->parsed()) return RunAppend(conn, append, *append_cmd);
  if (read_cmd->parsed()) return RunRead(conn, read, *read_cmd);
  if (stream_cmd->parsed()) return RunStream(conn, stream_id, stream_json);
  if (streams_cmd->parsed()) return RunList(conn, list_streams, /*categories=*/false);
  if (categories_cmd->parsed()) return RunList(conn, list_categories, /*categories=*/true);
  if (sub_cmd->parsed()) return RunSubscribe(conn, sub, *sub_cmd);
  if (verify_cmd->parsed()) {
    return RunVerify(conn, verify_stream, verify_all, verify_json, verify_public_key);
  }
  if (checkpoint_cmd->parsed()) return RunCheckpoint(conn, checkpoint_create, checkpoint_json);
  if (delete_cmd->parsed()) return RunDelete(conn, del);
  if (redact_cmd->parsed()) return RunRedact(conn, redact);
  if (snap_save_cmd->parsed()) return RunSnapshotSave(conn, snap, *snap_save_cmd);
  if (snap_load_cmd->parsed()) return RunSnapshotLoad(conn, snap, *snap_load_cmd);
  if (migrate_cmd->parsed()) return RunMigrate(migrate_action, migrate);
  if (group_create_cmd->parsed()) return RunGroupCreate(conn, grp, *group_create_cmd);
  if (group_update_cmd->parsed()) return RunGroupUpdate(conn, grp, *group_update_cmd);
  if (group_delete_cmd->parsed()) return RunGroupDelete(conn, grp);
  if (group_list_cmd->parsed()) return RunGroupList(conn, grp);
  if (group_info_cmd->parsed()) return RunGroupInfo(conn, grp);
  if (group_parked_cmd->parsed()) return RunGroupParked(conn, grp);
  if (group_replay_cmd->parsed()) return RunGroupSettle(conn, grp, /*replay=*/true);
  if (group_drop_cmd->parsed()) return RunGroupSettle(conn, grp, /*replay=*/false);
  if (consume_cmd->parsed()) return RunConsume(conn, consume, *consume_cmd);
  return kUsage;
}
