// projection-worker: a small, real projection. It subscribes to one category
// of a Logbook server and keeps a read model in its own PostgreSQL database:
// per stream, how many events it has and the sum of their "amount" fields.
//
// Exactly-once effect: each event's read-model update and the new checkpoint
// are written in one transaction, so after a crash at any moment (kill -9
// included) the worker resumes after the last position whose update
// committed: nothing is applied twice, nothing is skipped. The checkpoint
// update is also the guard: an event at or below the stored checkpoint (a
// duplicate delivery, or a second worker of the same name that got there
// first) changes nothing.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iostream>
#include <limits>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "logbook/client/client.h"
#include "nlohmann/json.hpp"

namespace {

namespace v1 = logbook::v1;

constexpr char kCheckpointsSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name      text   PRIMARY KEY,
  position  bigint NOT NULL
))sql";
// The read model; "{table}" is the projection's name, quoted.
constexpr char kTableSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS {table} (
  stream_id     text   PRIMARY KEY,
  events        bigint NOT NULL,
  amount_total  bigint NOT NULL,
  last_version  bigint NOT NULL
))sql";

constexpr char kStart[] = "start";
constexpr char kStartSql[] =
    "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) "
    "ON CONFLICT (name) DO NOTHING";
constexpr char kRead[] = "read_checkpoint";
constexpr char kReadSql[] = "SELECT position FROM projection_checkpoints WHERE name = $1";
// Moves the checkpoint forward only; no row changed means "already there".
constexpr char kAdvance[] = "advance";
constexpr char kAdvanceSql[] =
    "UPDATE projection_checkpoints SET position = $2 WHERE name = $1 AND position < $2";
constexpr char kApply[] = "apply";
constexpr char kApplySql[] =
    "INSERT INTO {table} AS t (stream_id, events, amount_total, last_version) "
    "VALUES ($1, 1, $2, $3) ON CONFLICT (stream_id) DO UPDATE "
    "SET events = t.events + 1, amount_total = t.amount_total + EXCLUDED.amount_total, "
    "last_version = EXCLUDED.last_version";

// `sql` with "{table}" replaced by `table` (an already quoted identifier).
std::string WithTable(std::string sql, const std::string& table) {
  return sql.replace(sql.find("{table}"), 7, table);
}

// The event's "amount": 0 when the data is not a JSON object or has no
// amount; an amount that is not an integer in int64 range counts 0 too, with
// a warning, so one bad event does not stop the projection.
int64_t Amount(const v1::RecordedEvent& e) {
  const auto data = nlohmann::json::parse(e.data(), nullptr, /*allow_exceptions=*/false);
  if (!data.is_object()) return 0;
  const auto it = data.find("amount");
  if (it == data.end() || it->is_null()) return 0;
  if (it->is_number_integer() &&
      !(it->is_number_unsigned() &&
        it->get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})) {
    return it->get<int64_t>();
  }
  std::cerr << "projection-worker: warning: " << e.stream_id() << "@" << e.stream_version()
            << " (position " << e.global_position() << ") has amount " << it->dump()
            << ", not an integer; counted as 0" << std::endl;
  return 0;
}

// One read-model table and its checkpoint, kept in step. Not thread-safe:
// like its connection, it is used by one thread at a time (first main, then
// the subscription's thread). Every method throws pqxx exceptions when the
// database fails; nothing is then committed.
class Projection {
 public:
  // Connects, creates the tables if missing and reads the checkpoint.
  Projection(const std::string& dsn, std::string name) : conn_(dsn), name_(std::move(name)) {
    const std::string table = conn_.quote_name(name_);
    pqxx::nontransaction(conn_).exec(kCheckpointsSchema);
    pqxx::nontransaction(conn_).exec(WithTable(kTableSchema, table));
    conn_.prepare(kStart, kStartSql);
    conn_.prepare(kRead, kReadSql);
    conn_.prepare(kAdvance, kAdvanceSql);
    conn_.prepare(kApply, WithTable(kApplySql, table));
    pqxx::work tx(conn_);
    tx.exec_prepared(kStart, name_);
    checkpoint_ = tx.exec_prepared1(kRead, name_)[0].as<uint64_t>();
    tx.commit();
  }

  // The position of the last event applied or skipped (0: none yet).
  uint64_t checkpoint() const { return checkpoint_; }

  // Applies `e` and moves the checkpoint to its position, in one transaction.
  // Returns false, changing nothing, when the checkpoint is already there.
  bool Apply(const v1::RecordedEvent& e) {
    pqxx::work tx(conn_);
    // First, as it also locks the checkpoint row against a twin worker.
    if (tx.exec_prepared(kAdvance, name_, e.global_position()).affected_rows() == 0) {
      tx.abort();
      return false;
    }
    tx.exec_prepared(kApply, e.stream_id(), Amount(e), e.stream_version());
    tx.commit();
    checkpoint_ = e.global_position();
    return true;
  }

  // Moves the checkpoint to `position` if it is behind it: every event of the
  // category up to there was applied, the rest were filtered out.
  void Advance(uint64_t position) {
    pqxx::work tx(conn_);
    if (tx.exec_prepared(kAdvance, name_, position).affected_rows() == 1) checkpoint_ = position;
    tx.commit();
  }

 private:
  pqxx::connection conn_;
  const std::string name_;
  uint64_t checkpoint_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051", database, category = "order", name = "order_totals";
  CLI::App app{
      "projection-worker: subscribes to a category of logbookd and keeps, per stream, the number "
      "of events and the sum of their JSON \"amount\" in a table named after the projection, in "
      "its own PostgreSQL database; its checkpoint commits in the same transaction as each "
      "update, so a restart (even after kill -9) resumes exactly where it stopped"};
  app.option_defaults()->always_capture_default();
  app.add_option("--address", address, "logbookd host:port")->envname("LOGBOOK_ADDRESS");
  app.add_option("--database", database, "Read-model database (libpq connection string or URL)")
      ->envname("PROJECTION_DATABASE_URL")
      ->required();
  app.add_option("--category", category, "Category to project (stream ids '<category>-...')");
  app.add_option("--name", name,
                 "Projection name: its read-model table and its row in projection_checkpoints");
  CLI11_PARSE(app, argc, argv);
  const std::string me = "projection-worker " + name + ": ";

  // SIGTERM and SIGINT are blocked in every thread (gRPC's inherit the mask)
  // and taken by a thread of our own, below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    Projection projection(database, name);
    std::cerr << me << "category '" << category << "' from " << address
              << ", resuming after position " << projection.checkpoint() << std::endl;

    v1::SubscribeRequest request;
    request.set_category(category);
    if (projection.checkpoint() == 0) {
      request.mutable_from_beginning();
    } else {
      request.set_after_position(projection.checkpoint());
    }
    logbook::ClientOptions options;
    options.address = address;
    logbook::Client client(options);
    uint64_t applied = 0, duplicates = 0;
    std::string failure;  // Set by the handler; read after Wait().
    auto subscription = client.Subscribe(request, [&](const v1::SubscribeResponse& r) {
      try {
        if (r.has_event()) {
          if (!projection.Apply(r.event())) {
            ++duplicates;
          } else if (++applied % 1000 == 0) {
            std::cerr << me << applied << " events applied, at position "
                      << projection.checkpoint() << std::endl;
          }
        } else if (r.has_checkpoint()) {
          projection.Advance(r.checkpoint().global_position());
        } else if (r.has_caught_up()) {
          std::cerr << me << "caught up at position " << r.caught_up().global_position()
                    << " (" << applied << " events applied); live" << std::endl;
        }
        return true;
      } catch (const std::exception& e) {
        // Nothing of this message was committed. Stop; a supervisor restarts
        // us and we resume after the last committed checkpoint.
        failure = e.what();
        return false;
      }
    });

    std::thread stopper([&signals, &subscription] {
      int received = 0;
      sigwait(&signals, &received);
      subscription->Stop();
    });
    const absl::Status status = subscription->Wait();
    // Wakes the stopper if no signal did (Stop() is idempotent), so it never
    // outlives `subscription`.
    pthread_kill(stopper.native_handle(), SIGTERM);
    stopper.join();

    std::cerr << me << "stopped after " << applied << " events applied"
              << (duplicates > 0 ? " (" + std::to_string(duplicates) + " duplicates skipped)" : "")
              << ", at position " << projection.checkpoint() << ": "
              << (failure.empty() ? status.ToString() : "read model: " + failure) << std::endl;
    return failure.empty() && (status.ok() || absl::IsCancelled(status)) ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << me << e.what() << std::endl;
    return 1;
  }
}
