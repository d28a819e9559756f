// order-emails: a worker of a consumer group. It joins a group on the
// category `order` and, for each OrderPlaced event, "sends" an order
// confirmation: it records it as one row of `sent_emails` in its own
// PostgreSQL database, then acks the delivery.
//
// Exactly one email per event although delivery is at least once: the row's
// key is the event id and the insert is ON CONFLICT DO NOTHING, so a
// redelivery (after a crash before the ack, an ack timeout, a replay of a
// parked event) finds the row and sends nothing twice. Run as many of these
// as you like, each with its own --consumer name: the group hands each event
// to one of them.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "logbook/client/client.h"
#include "logbook/client/worker.h"

namespace {

namespace v1 = logbook::v1;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS sent_emails (
  event_id      uuid        PRIMARY KEY,
  order_stream  text        NOT NULL,
  sent_at       timestamptz NOT NULL
))sql";

constexpr char kSend[] = "send";
// No row inserted: this event's email was sent already.
constexpr char kSendSql[] =
    "INSERT INTO sent_emails (event_id, order_stream, sent_at) VALUES ($1, $2, now()) "
    "ON CONFLICT (event_id) DO NOTHING";

// The outbox of sent emails. Not thread-safe: used by the worker's thread
// only. Connects lazily, and again after the connection broke.
class Outbox {
 public:
  explicit Outbox(std::string dsn) : dsn_(std::move(dsn)) {}

  // Creates the table if it is missing; throws pqxx exceptions.
  void Prepare() { pqxx::nontransaction(Conn()).exec(kSchema); }

  // Records the email of `e`; true when it was sent now, false when an
  // earlier delivery of the event had sent it. Throws pqxx exceptions.
  bool Send(const v1::RecordedEvent& e) {
    try {
      pqxx::work tx(Conn());
      const bool sent = tx.exec_prepared(kSend, e.event_id(), e.stream_id()).affected_rows() == 1;
      tx.commit();
      return sent;
    } catch (const pqxx::broken_connection&) {
      conn_.reset();  // Connect again on the next delivery.
      throw;
    }
  }

 private:
  pqxx::connection& Conn() {
    if (!conn_) {
      conn_ = std::make_unique<pqxx::connection>(dsn_);
      conn_->prepare(kSend, kSendSql);
    }
    return *conn_;
  }

  const std::string dsn_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051", database, group = "order_emails", consumer;
  bool create_group = false;
  CLI::App app{
      "order-emails: joins a consumer group on the category 'order' and, for each OrderPlaced "
      "event, records an order confirmation email in the table sent_emails of its own "
      "PostgreSQL database (one row per event id, so a redelivery sends nothing twice), then "
      "acks it; other events are acked untouched"};
  app.option_defaults()->always_capture_default();
  app.add_option("--address", address, "logbookd host:port")->envname("LOGBOOK_ADDRESS");
  app.add_option("--database", database, "Its own database (libpq connection string or URL)")
      ->envname("ORDER_EMAILS_DATABASE_URL")
      ->required();
  app.add_option("--group", group, "The consumer group to join");
  app.add_option("--consumer", consumer,
                 "This worker's name in the group, unique among its running workers "
                 "(default: order-emails-HOSTNAME-PID)");
  app.add_flag("--create-group", create_group,
               "Create the group first if it does not exist: category 'order', type "
               "OrderPlaced, from the beginning, default settings");
  CLI11_PARSE(app, argc, argv);
  if (consumer.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    consumer = "order-emails-" + std::string(host) + "-" + std::to_string(getpid());
  }
  const std::string me = "order-emails " + consumer + ": ";

  // SIGTERM and SIGINT are blocked in every thread (gRPC's inherit the mask)
  // and taken by a thread of our own, below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Outbox outbox(database);
  try {
    outbox.Prepare();
  } catch (const std::exception& e) {
    std::cerr << me << "database: " << e.what() << std::endl;
    return 1;
  }

  logbook::ClientOptions options;
  options.address = address;
  logbook::Client client(options);
  if (create_group) {
    v1::CreateConsumerGroupRequest request;
    request.set_group(group);
    request.mutable_target()->set_category("order");
    request.mutable_target()->mutable_filter()->add_event_types("OrderPlaced");
    request.mutable_from_beginning();
    auto created = client.CreateConsumerGroup(request);
    if (created.ok()) {
      std::cerr << me << "created group " << group << std::endl;
    } else if (!absl::IsAlreadyExists(created.status())) {
      std::cerr << me << "cannot create group " << group << ": " << created.status() << std::endl;
      return 1;
    }
  }

  uint64_t sent = 0, duplicates = 0;
  logbook::WorkerOptions worker_options;
  worker_options.group = group;
  worker_options.consumer = consumer;
  worker_options.on_joined = [&](const v1::ConsumerJoined& joined) {
    std::cerr << me << "joined group " << group << " on " << joined.instance()
              << ", max in flight " << joined.max_in_flight() << std::endl;
  };
  worker_options.on_disconnected = [&](const absl::Status& status, absl::Duration backoff) {
    std::cerr << me << "disconnected (" << status << "); joining again in "
              << absl::FormatDuration(backoff) << std::endl;
  };
  logbook::Worker worker(client, worker_options, [&](const v1::Delivery& d) -> absl::Status {
    const v1::RecordedEvent& e = d.event();
    if (e.type() != "OrderPlaced") return absl::OkStatus();  // Not ours: acked, nothing sent.
    try {
      if (outbox.Send(e)) {
        ++sent;
        std::cout << "sent the confirmation of " << e.stream_id() << " (event " << e.event_id()
                  << ", attempt " << d.attempt() << ")" << std::endl;
      } else {
        ++duplicates;
        std::cout << "already sent the confirmation of " << e.stream_id() << " (event "
                  << e.event_id() << ", attempt " << d.attempt() << ")" << std::endl;
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      // Nothing committed: nacked RETRY, delivered again after the group's
      // backoff (parked after its max_deliveries).
      std::cerr << me << "database: " << e.what() << std::endl;
      return absl::UnavailableError(std::string("database: ") + e.what());
    }
  });

  std::thread stopper([&signals, &worker] {
    int received = 0;
    sigwait(&signals, &received);
    worker.Stop();
  });
  const absl::Status status = worker.Run();
  // Wakes the stopper if no signal did (Stop() is idempotent).
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  std::cerr << me << "stopped after " << sent << " emails sent"
            << (duplicates > 0 ? " (" + std::to_string(duplicates) + " sent before, skipped)" : "")
            << ": " << status << std::endl;
  return status.ok() ? 0 : 1;
}
