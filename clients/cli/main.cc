// logbook: the command-line client. Talks to logbookd over gRPC; `migrate`
// talks to PostgreSQL directly.
//
// Exit codes (stable, for scripts): 0 ok, 1 unexpected error, 2 usage,
// 3 not found, 4 conflict (wrong expected version, event id reused),
// 5 input rejected (invalid or too large), 6 server or database unavailable,
// 7 failed precondition (e.g. an edited or missing migration).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "logbook/client/client.h"
#include "logbook/store/limits.h"
#include "logbook/store/migrations.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace {

namespace v1 = logbook::v1;
using nlohmann::json;

enum Exit { kOk = 0, kError = 1, kUsage = 2, kNotFound = 3, kConflict = 4, kRejected = 5,
            kUnavailable = 6, kPrecondition = 7 };

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

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ",
                          absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()),
                          absl::UTCTimeZone());
}

bool IsJson(const std::string& content_type, const std::string& bytes, json* out) {
  if (!logbook::store::IsJsonContentType(content_type)) return false;
  *out = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  return !out->is_discarded();
}

// Payload bytes as JSON: parsed JSON for JSON content, a string for UTF-8
// text, {"base64": ...} otherwise.
json PayloadJson(const std::string& content_type, const std::string& bytes) {
  json parsed;
  if (IsJson(content_type, bytes, &parsed)) return parsed;
  if (logbook::store::IsValidUtf8(bytes) && bytes.find('\0') == std::string::npos) return bytes;
  return json{{"base64", absl::Base64Escape(bytes)}};
}

std::string PayloadText(const std::string& content_type, const std::string& bytes) {
  json parsed;
  if (IsJson(content_type, bytes, &parsed)) return parsed.dump();
  if (logbook::store::IsValidUtf8(bytes) && bytes.find('\0') == std::string::npos) return bytes;
  return absl::StrCat("<", bytes.size(), " bytes>");
}

json EventJson(const v1::RecordedEvent& e) {
  json j = {{"global_position", e.global_position()}, {"stream_id", e.stream_id()},
            {"stream_version", e.stream_version()},   {"event_id", e.event_id()},
            {"type", e.type()},                       {"content_type", e.content_type()},
            {"recorded_at", Rfc3339(e.recorded_at())}, {"data", PayloadJson(e.content_type(), e.data())}};
  if (!e.metadata().empty()) j["metadata"] = PayloadJson(e.content_type(), e.metadata());
  if (!e.correlation_id().empty()) j["correlation_id"] = e.correlation_id();
  if (!e.causation_id().empty()) j["causation_id"] = e.causation_id();
  return j;
}

struct Connection {
  std::string address = "127.0.0.1:50051";
  int timeout_seconds = 30;

  logbook::Client Client() const {
    logbook::ClientOptions options;
    options.address = address;
    options.call_timeout = absl::Seconds(timeout_seconds);
    return logbook::Client(options);
  }
  std::unique_ptr<v1::EventStore::Stub> Stub() const {
    return v1::EventStore::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }
  void Prepare(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
  }
};

int Fail(const absl::Status& status);

void PrintEvent(const v1::RecordedEvent& e, bool as_json) {
  if (as_json) {
    std::cout << EventJson(e).dump() << std::endl;
  } else {
    std::cout << e.global_position() << "  " << e.stream_id() << "@" << e.stream_version()
              << "  " << e.type() << "  " << Rfc3339(e.recorded_at()) << "  "
              << PayloadText(e.content_type(), e.data()) << std::endl;
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

struct AppendArgs {
  std::string stream, type, data, data_file, metadata, content_type, expect = "any", event_id;
  std::string correlation_id, causation_id;
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
  if (cmd.count("--data") + cmd.count("--data-file") > 1) {
    return Usage("append: give either --data or --data-file, not both");
  }
  if (cmd.count("--data")) {
    event->set_data(a.data);
  } else if (cmd.count("--data-file")) {
    std::ifstream in(a.data_file, std::ios::binary);
    if (!in) return Usage(absl::StrCat("append: cannot read --data-file ", a.data_file));
    std::stringstream bytes;
    bytes << in.rdbuf();
    event->set_data(bytes.str());
  } else if (!isatty(STDIN_FILENO)) {
    std::stringstream bytes;
    bytes << std::cin.rdbuf();
    event->set_data(bytes.str());
  } else {
    return Usage("append: give the event data with --data, --data-file or on stdin");
  }

  v1::ExpectedVersion* expected = request.mutable_expected_version();
  uint64_t exact = 0;
  if (a.expect == "any") {
    expected->mutable_any();
  } else if (a.expect == "none") {
    expected->mutable_no_stream();
  } else if (a.expect == "exists") {
    expected->mutable_stream_exists();
  } else if (absl::SimpleAtoi(a.expect, &exact)) {
    expected->set_exact(exact);
  } else {
    return Usage("append: --expect takes any, none, exists or a version number");
  }

  logbook::Client client = conn.Client();
  absl::StatusOr<v1::AppendResponse> appended =
      client.Append(request.stream_id(), request.expected_version(),
                    {request.events().begin(), request.events().end()});
  if (!appended.ok()) return Fail(appended.status());
  const v1::AppendResponse& response = *appended;
  if (a.json) {
    std::cout << json{{"stream_id", a.stream},
                      {"first_version", response.first_version()},
                      {"last_version", response.last_version()},
                      {"first_position", response.first_position()},
                      {"last_position", response.last_position()},
                      {"event_ids", response.event_ids()},
                      {"committed_at", Rfc3339(response.committed_at())}}
                     .dump()
              << "\n";
  } else {
    std::cout << "appended " << a.type << " to " << a.stream << " at version "
              << response.last_version() << " (position " << response.last_position()
              << ", event id " << response.event_ids(0) << ")\n";
  }
  return kOk;
}

struct ReadArgs {
  std::string target, category, prefix;
  std::vector<std::string> types;
  uint64_t from = 0;
  uint64_t limit = 100;
  bool backward = false, json = false, follow = false;
};

int RunRead(const Connection& conn, const ReadArgs& a, CLI::App& cmd) {
  if (a.follow && a.backward) return Usage("read: --follow reads forward");
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
    std::cout << json{{"stream_id", info.stream_id()},
                      {"version", info.version()},
                      {"last_position", info.last_position()},
                      {"created_at", Rfc3339(info.created_at())}}
                     .dump()
              << "\n";
  } else {
    std::cout << "stream         " << info.stream_id() << "\nversion        " << info.version()
              << "\nlast position  " << info.last_position() << "\ncreated at     "
              << Rfc3339(info.created_at()) << "\n";
  }
  return kOk;
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

struct MigrateArgs {
  std::string database, dir;
};

absl::StatusOr<std::vector<logbook::store::Migration>> KnownMigrations(const MigrateArgs& a) {
  if (a.dir.empty()) return logbook::store::EmbeddedMigrations();
  return logbook::store::LoadMigrationsFromDir(a.dir);
}

int RunMigrate(const std::string& action, const MigrateArgs& a) {
  using logbook::store::MigrationState;
  auto known = KnownMigrations(a);
  if (!known.ok()) return Fail(known.status());
  if (action == "up") {
    const auto start = absl::Now();
    auto applied = logbook::store::MigrateUp(a.database, *known, [](const auto& m) {
      std::cout << "applying " << m.name << " ..." << std::endl;
    });
    if (!applied.ok()) return Fail(applied.status());
    if (applied->empty()) {
      std::cout << "already up to date: schema version " << known->back().version << "\n";
    } else {
      std::cout << "applied " << applied->size() << " migration(s) in "
                << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1)))
                << "; schema version " << applied->back().version << "\n";
    }
    return kOk;
  }
  auto states = logbook::store::MigrationStatus(a.database, *known);
  if (!states.ok()) return Fail(states.status());
  int edited = 0, pending = 0, applied = 0;
  for (const MigrationState& s : *states) {
    const char* label = "pending";
    switch (s.state) {
      case MigrationState::State::kApplied: label = "applied"; ++applied; break;
      case MigrationState::State::kPending: label = "pending"; ++pending; break;
      case MigrationState::State::kEdited: label = "EDITED after it was applied"; ++edited; break;
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
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"logbook: the Logbook event store client"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  Connection conn;
  app.add_option("--address", conn.address, "logbookd address, host:port")
      ->envname("LOGBOOK_ADDRESS");
  app.add_option("--timeout", conn.timeout_seconds, "Seconds before a call gives up")
      ->check(CLI::PositiveNumber);

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
  append_cmd->add_flag("--json", append.json, "Print the result as JSON");
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
  read_cmd->add_flag("--json", read.json, "One JSON object per line");
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
  CLI::App* stream_cmd = app.add_subcommand("stream", "Show a stream's version and position");
  stream_cmd->add_option("stream", stream_id, "Stream id")->required();
  stream_cmd->add_flag("--json", stream_json, "Print as JSON");

  MigrateArgs migrate;
  std::string migrate_action;
  CLI::App* migrate_cmd = app.add_subcommand(
      "migrate", "Install or upgrade the database schema (talks to PostgreSQL directly)");
  migrate_cmd->add_option("action", migrate_action,
                          "up: apply pending migrations; status: list them; verify: check "
                          "applied ones are unedited")
      ->required()
      ->check(CLI::IsMember({"up", "status", "verify"}));
  migrate_cmd->add_option("--database", migrate.database, "PostgreSQL connection string or URL")
      ->envname("LOGBOOK_DATABASE_URL")
      ->required();
  migrate_cmd->add_option("--migrations-dir", migrate.dir,
                          "Read NNNN_*.sql files from this folder instead of the copies "
                          "built into this binary");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  }
  if (append_cmd->parsed()) return RunAppend(conn, append, *append_cmd);
  if (read_cmd->parsed()) return RunRead(conn, read, *read_cmd);
  if (stream_cmd->parsed()) return RunStream(conn, stream_id, stream_json);
  if (sub_cmd->parsed()) return RunSubscribe(conn, sub, *sub_cmd);
  if (migrate_cmd->parsed()) return RunMigrate(migrate_action, migrate);
  return kUsage;
}
