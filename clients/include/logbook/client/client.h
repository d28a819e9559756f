// The Logbook C++ client: appends with safe retries, reads, and
// subscriptions that resume by themselves.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/security/credentials.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "logbook/v1/event_store.grpc.pb.h"

namespace logbook {

// TLS to logbookd (docs/security.md). Off by default: plaintext, which
// logbookd serves only on a loopback address.
struct ClientTls {
  bool enabled = false;
  std::string root_certs;   // PEM of the CAs to trust; empty: the system's.
  std::string cert_chain;   // PEM client certificate, for mTLS; empty: none.
  std::string private_key;  // PEM key of cert_chain.
};

// Reads the PEM files of ClientTls (enabled); an empty path leaves that part
// empty. INVALID_ARGUMENT naming the file that cannot be read, or a
// certificate without its key (or a key without its certificate).
absl::StatusOr<ClientTls> LoadClientTls(const std::string& ca_file, const std::string& cert_file,
                                        const std::string& key_file);

// The channel credentials for `tls`: TLS when enabled, else plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ClientTls& tls);

struct ClientOptions {
  std::string address = "127.0.0.1:50051";       // logbookd host:port.
  ClientTls tls;                                  // Plaintext unless enabled.
  // Sent as `authorization: Bearer <token>` with every call when set: a
  // token of logbookd's tokens file (docs/security.md).
  std::string token;
  // Sent as `logbook-tenant` metadata when set: the tenant whose streams the
  // calls work on. Only a cross-tenant principal may name another than its
  // own (docs/security.md "Tenants"); others need not send it.
  std::string tenant;
  absl::Duration call_timeout = absl::Seconds(30);  // Per attempt of a unary call or read.
  int max_attempts = 5;                           // Tries of one Append.
  absl::Duration initial_backoff = absl::Milliseconds(100);  // Doubles per retry...
  absl::Duration max_backoff = absl::Seconds(5);  // ...up to this.
};

// Adds options.token and options.tenant, if set, to a call made on
// Client::stub() directly (the Client's own calls carry them already).
void AddCallMetadata(grpc::ClientContext& ctx, const ClientOptions& options);

// What goes with one Append besides its events.
struct AppendOptions {
  // A W3C trace context ("00-<trace id>-<parent id>-<flags>"), sent as the
  // call's "traceparent" metadata: logbookd stores it with every event of
  // the append and returns it on reads and deliveries
  // (RecordedEvent.traceparent). Empty: none.
  std::string traceparent;
};

// Typed expected versions for Append.
namespace expect {
v1::ExpectedVersion Any();
v1::ExpectedVersion NoStream();
v1::ExpectedVersion StreamExists();
v1::ExpectedVersion Exact(uint64_t version);
}  // namespace expect

// A new event id: a time-ordered version 7 UUID (see logbook/store/uuid.h).
std::string NewEventId();

// On an ABORTED Append (wrong expected version): the stream's actual
// version, which the server sends in the `logbook-actual-version` trailer;
// nullopt for other errors or when the stream does not exist. Retry with
// expect::Exact(*version) without reading the stream first.
std::optional<uint64_t> ActualVersion(const absl::Status& status);

// What Client::Load rebuilds from. Unset fields: no bound.
struct LoadOptions {
  std::optional<uint32_t> schema_version;  // Only snapshots of this schema version.
  std::optional<uint64_t> until_version;   // The stream as of this version.
  std::optional<absl::Time> until_time;    // The stream as of this time (recorded_at).
};

// A stream's state as of a point: the newest usable snapshot, and the events
// after it up to the point, in version order.
struct Loaded {
  std::optional<v1::Snapshot> snapshot;  // Unset: none; events start at the stream's start.
  std::vector<v1::RecordedEvent> events;
};

// A running subscription. Thread-safe.
class Subscription {
 public:
  virtual ~Subscription() = default;
  // Ends it; Wait() then returns CANCELLED. Idempotent.
  virtual void Stop() = 0;
  // Blocks until it ended: the handler returned false (OK), Stop() was called
  // (CANCELLED), or a failure that retrying cannot fix (its status).
  virtual absl::Status Wait() = 0;
};

// A connection to logbookd. Thread-safe; share one per process.
class Client {
 public:
  explicit Client(ClientOptions options);

  // Appends `events` to `stream`, all or nothing. Events without an id get
  // one here, before the first attempt, so retries after UNAVAILABLE, UNKNOWN
  // or DEADLINE_EXCEEDED are idempotent (the server recognizes the ids and
  // returns the original positions). Other errors return at once: ABORTED
  // (wrong expected version; see ActualVersion), ALREADY_EXISTS,
  // INVALID_ARGUMENT, ...
  absl::StatusOr<v1::AppendResponse> Append(const std::string& stream,
                                            const v1::ExpectedVersion& expected,
                                            std::vector<v1::EventData> events,
                                            const AppendOptions& options = {});

  // One attempt of Append without waiting for it: returns at once, and
  // `done` runs once, on a gRPC thread, with what that attempt returned. No
  // retries: to retry idempotently after UNAVAILABLE and the like, give the
  // events ids yourself (ids filled in here are not handed back on failure).
  // `done` must not block; it may start another call. For many appends in
  // flight from few threads, e.g. an importer. Destroy the Client only once
  // every `done` has been called.
  void AppendAsync(const std::string& stream, const v1::ExpectedVersion& expected,
                   std::vector<v1::EventData> events,
                   std::function<void(absl::StatusOr<v1::AppendResponse>)> done);

  // Reads a range of a stream or of the global log into memory.
  absl::StatusOr<std::vector<v1::RecordedEvent>> ReadStream(const v1::ReadStreamRequest& request);
  absl::StatusOr<std::vector<v1::RecordedEvent>> ReadAll(const v1::ReadAllRequest& request);
  absl::StatusOr<v1::StreamInfo> GetStream(const std::string& stream);

  // What an aggregate is rebuilt from: the newest snapshot at or below the
  // point `options` names (with its schema version, if given), then the
  // events after it up to that point, read in pages. With until_time, the
  // point is the stream's last version recorded at or before it. NOT_FOUND
  // when the stream does not exist (or had no event at until_time).
  absl::StatusOr<Loaded> Load(const std::string& stream, const LoadOptions& options = {});

  // Thin wrappers of the RPCs of the same names; see event_store.proto.
  absl::StatusOr<v1::DeleteStreamResponse> DeleteStream(const std::string& stream,
                                                        const v1::ExpectedVersion& expected,
                                                        bool tombstone);
  // `admin_token`: sent as `authorization: Bearer <admin_token>` instead of
  // ClientOptions::token; empty: the token of the options (it needs the
  // admin role).
  absl::StatusOr<v1::RedactEventResponse> RedactEvent(const std::string& stream,
                                                      uint64_t version,
                                                      const std::string& reason,
                                                      const std::string& admin_token = "");
  absl::StatusOr<v1::SaveSnapshotResponse> SaveSnapshot(const std::string& stream,
                                                        uint64_t version,
                                                        uint32_t schema_version,
                                                        std::string state);
  absl::StatusOr<v1::Snapshot> LoadSnapshot(const v1::LoadSnapshotRequest& request);
  // Runs a verification to its end, calling `on_progress` (if set) with
  // every progress message; returns the result. No deadline: verifying the
  // whole log takes as long as it takes.
  absl::StatusOr<v1::VerifyResult> Verify(
      const v1::VerifyRequest& request,
      const std::function<void(const v1::VerifyProgress&)>& on_progress = nullptr);

  // Calls `handler` on a thread of the subscription's own with every message
  // of the subscription, in order; returning false ends it. After a
  // disconnect or server restart it resubscribes after the last position it
  // delivered (an event or a checkpoint), backing off between tries, so the
  // handler sees every event once per successful delivery, in order.
  // When `request` leaves max_events_per_message unset, it asks the server
  // for batches of up to 500 events and hands them to `handler` one event
  // per message (in `event`), resuming after the last event handled. When
  // it is set, the messages come as the server sends them (`events` for
  // batches), and resuming starts after a batch's last event.
  std::unique_ptr<Subscription> Subscribe(
      v1::SubscribeRequest request,
      std::function<bool(const v1::SubscribeResponse&)> handler);

  // Consumer groups (see event_store.proto for each RPC's contract, and
  // logbook/client/worker.h to consume one). One attempt each, with
  // ClientOptions::call_timeout; errors are the server's status: NOT_FOUND
  // (no such group), ALREADY_EXISTS (Create), INVALID_ARGUMENT naming the
  // field, UNAVAILABLE, ...
  absl::StatusOr<v1::ConsumerGroupInfo> CreateConsumerGroup(
      const v1::CreateConsumerGroupRequest& request);
  // Changes the settings that are set in `settings`; returns the group with
  // its effective settings.
  absl::StatusOr<v1::ConsumerGroupInfo> UpdateConsumerGroup(
      const std::string& group, const v1::ConsumerGroupSettings& settings);
  // Deletes the group with its deliveries and parked events.
  absl::Status DeleteConsumerGroup(const std::string& group);
  absl::StatusOr<std::vector<v1::ConsumerGroupInfo>> ListConsumerGroups();
  absl::StatusOr<v1::ConsumerGroupInfo> GetConsumerGroup(const std::string& group);
  // One page of parked events with a delivery id greater than `after`;
  // `max_count` 0: the server's default page (1,000). The response's
  // next_after is set when there are more.
  absl::StatusOr<v1::ListParkedResponse> ListParked(const std::string& group, uint64_t after = 0,
                                                    uint32_t max_count = 0);
  // Put back for delivery (attempts reset), or forget, the parked events
  // `selection` names; return how many.
  absl::StatusOr<uint64_t> ReplayParked(const v1::ParkedSelection& selection);
  absl::StatusOr<uint64_t> DropParked(const v1::ParkedSelection& selection);

  v1::EventStore::Stub& stub() { return *stub_; }
  // The channel its calls go over, to share or to keep open past the
  // client's end.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const ClientOptions& options() const { return options_; }

 private:
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EventStore::Stub> stub_;
};

}  // namespace logbook
