// projection-worker: a small, real projection. It subscribes to one category
// of a Logbook server and keeps a read model in its own PostgreSQL database:
// per stream, how many events it has and the sum of their "amount" fields.
//
// Exactly-once effect: each event's read-model update and the new checkpoint
// are written in one transaction, so after a crash at any moment (kill -9
// included) the worker resumes after the last position whose update
// committed: nothing is applied twice, nothing is skipped.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <pqxx/pqxx>
#include <thread>

#include "logbook/client/client.h"
#include "nlohmann/json.hpp"

namespace {

namespace v1 = logbook::v1;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name      text   PRIMARY KEY,
  position  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS order_totals (
  stream_id     text   PRIMARY KEY,
  events        bigint NOT NULL,
  amount_total  bigint NOT NULL,
  last_version  bigint NOT NULL
);
)sql";

constexpr char kApply[] = "apply";
constexpr char kApplySql[] =
    "INSERT INTO order_totals AS t (stream_id, events, amount_total, last_version) "
    "VALUES ($1, 1, $2, $3) ON CONFLICT (stream_id) DO UPDATE "
    "SET events = t.events + 1, amount_total = t.amount_total + EXCLUDED.amount_total, "
    "last_version = EXCLUDED.last_version";
constexpr char kCheckpoint[] = "checkpoint";
constexpr char kCheckpointSql[] =
    "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) "
    "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position";

// The "amount" of an event's JSON data; 0 when absent or not JSON.
int64_t Amount(const v1::RecordedEvent& event) {
  const auto data = nlohmann::json::parse(event.data(), nullptr, /*allow_exceptions=*/false);
  if (!data.is_object()) return 0;
  auto it = data.find("amount");
  return it != data.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051", database, category = "order", name = "order_totals";
  CLI::App app{
      "projection-worker: keeps order_totals (events and summed \"amount\" per stream of a "
      "category) in its own PostgreSQL database, with its checkpoint in the same transaction"};
  app.option_defaults()->always_capture_default();
  app.add_option("--address", address, "logbookd host:port")->envname("LOGBOOK_ADDRESS");
  app.add_option("--database", database, "Read-model database (libpq connection string or URL)")
      ->envname("PROJECTION_DATABASE_URL")
      ->required();
  app.add_option("--category", category, "Category to project");
  app.add_option("--name", name, "Projection name, the key of its checkpoint");
  CLI11_PARSE(app, argc, argv);

  // SIGTERM and SIGINT are taken by a thread of their own (see below).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    pqxx::connection conn(database);
    pqxx::nontransaction(conn).exec(kSchema);
    conn.prepare(kApply, kApplySql);
    conn.prepare(kCheckpoint, kCheckpointSql);
    uint64_t checkpoint = 0;
    {
      pqxx::nontransaction tx(conn);
      pqxx::result r =
          tx.exec_params("SELECT position FROM projection_checkpoints WHERE name = $1", name);
      if (!r.empty()) checkpoint = r[0][0].as<uint64_t>();
    }
    std::cerr << "projection-worker " << name << ": category '" << category << "' from " << address
              << ", resuming after position " << checkpoint << std::endl;

    v1::SubscribeRequest request;
    request.set_category(category);
    if (checkpoint > 0) request.set_after_position(checkpoint);
    logbook::ClientOptions options;
    options.address = address;
    logbook::Client client(options);
    uint64_t applied = 0;
    std::string failure;
    auto subscription = client.Subscribe(request, [&](const v1::SubscribeResponse& r) {
      try {
        if (r.has_event()) {
          const v1::RecordedEvent& e = r.event();
          pqxx::work tx(conn);
          tx.exec_prepared(kApply, e.stream_id(), Amount(e), e.stream_version());
          tx.exec_prepared(kCheckpoint, name, e.global_position());
          tx.commit();
          if (++applied % 1000 == 0) {
            std::cerr << "projection-worker " << name << ": " << applied
                      << " events applied, at position " << e.global_position() << std::endl;
          }
        } else if (r.has_checkpoint()) {
          pqxx::work tx(conn);
          tx.exec_prepared(kCheckpoint, name, r.checkpoint().global_position());
          tx.commit();
        } else if (r.has_caught_up()) {
          std::cerr << "projection-worker " << name << ": caught up at position "
                    << r.caught_up().global_position() << "; live" << std::endl;
        }
      } catch (const std::exception& e) {
        // The read model is unreachable: stop; a supervisor restarts us and
        // we resume from the last committed checkpoint.
        failure = e.what();
        return false;
      }
      return true;
    });
    std::thread([&signals, &subscription] {
      int received = 0;
      sigwait(&signals, &received);
      subscription->Stop();
    }).detach();
    const absl::Status status = subscription->Wait();
    std::cerr << "projection-worker " << name << ": stopped after " << applied << " events ("
              << (failure.empty() ? status.ToString() : failure) << ")" << std::endl;
    return failure.empty() && (status.ok() || absl::IsCancelled(status)) ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "projection-worker " << name << ": " << e.what() << std::endl;
    return 1;
  }
}
