// Test support: the end-to-end fixture. A fresh migrated database, the real
// logbookd serving it, and helpers that speak to it only through its public
// gRPC API (and the C++ client library).
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "logbook/client/client.h"
#include "logbook/v1/event_store.grpc.pb.h"
#include "logbookd_process.h"
#include "read_events.h"

namespace logbook::testing {

// A call's trailing metadata, e.g. "logbook-actual-version" -> "2".
using Trailers = std::multimap<std::string, std::string>;

// Everything a Verify call sent.
struct Verified {
  std::vector<v1::VerifyProgress> progress;
  std::vector<v1::VerifyResult> results;
  bool result_was_last = true;  // No message came after the first result.
  grpc::Status status;

  const v1::VerifyResult& result() const { return results.at(0); }
};

// The base of every end-to-end gtest: SetUp creates a migrated database
// (dsn_, as the superuser), starts logbookd on it (as logbook_app, admin
// calls as logbook_redactor) with the arguments given
// to the constructor, and makes stub_ on its channel. A suite that needs
// flags passes them up:
//
//   class RedactionTest : public testing::ServerTest {
//    protected:
//     RedactionTest() : ServerTest({"--admin-token", kToken}) {}
//   };
//
// Helpers named Try* return the call's status; the others expect success
// (a failure fails the test, non-fatally) and return the response. The Try*
// helpers may be called from several threads at once (gRPC stubs are
// thread-safe); StartServer only from the test's thread, while no other
// thread uses server_ or stub_.
class ServerTest : public ::testing::Test {
 protected:
  explicit ServerTest(std::vector<std::string> logbookd_args = {});

  void SetUp() override;

  // Stops the running logbookd, if any, and starts a new one on the same
  // database with `args` (instead of the constructor's) on `port` (0: one
  // it picks); replaces server_ and stub_. Fails the test (fatally) if it
  // does not start.
  void StartServer(std::vector<std::string> args, int port = 0);

  // Appends: `request` as it is, through `stub` (stub_ if null); the
  // server's trailing metadata go to `trailers` if given.
  grpc::Status TryAppend(const v1::AppendRequest& request, v1::AppendResponse* response = nullptr,
                         Trailers* trailers = nullptr, v1::EventStore::Stub* stub = nullptr);
  // Appends `events` to `stream` with any expected version.
  grpc::Status TryAppend(const std::string& stream, std::vector<v1::EventData> events,
                         v1::AppendResponse* response = nullptr,
                         v1::EventStore::Stub* stub = nullptr);
  v1::AppendResponse Append(const std::string& stream, std::vector<v1::EventData> events);
  // The request that appends `events` to `stream` with any expected version.
  static v1::AppendRequest Request(const std::string& stream, std::vector<v1::EventData> events);

  // Every event a ReadStream or ReadAll call returned, and its status.
  template <typename ReadRequest>
  std::pair<std::vector<v1::RecordedEvent>, grpc::Status> Read(const ReadRequest& request) {
    return ReadEvents(*stub_, request);
  }
  std::pair<std::vector<v1::RecordedEvent>, grpc::Status> ReadStream(
      const std::string& stream, std::optional<uint64_t> until_version = std::nullopt);

  // GetStream; with `status` the call may fail (its status goes there).
  v1::StreamInfo GetStream(const std::string& stream, grpc::Status* status = nullptr);

  // A whole Verify call: of `request`, of one stream, of the whole log.
  Verified Verify(const v1::VerifyRequest& request);
  Verified VerifyStream(const std::string& stream);
  Verified VerifyAll();

  grpc::Status TrySaveSnapshot(const std::string& stream, uint64_t version, uint32_t schema,
                               const std::string& state,
                               v1::SaveSnapshotResponse* response = nullptr);

  // The C++ client library, on server_'s address with default options.
  Client NewClient() const;

  std::vector<std::string> logbookd_args_;
  std::string dsn_;
  std::unique_ptr<Logbookd> server_;
  std::unique_ptr<v1::EventStore::Stub> stub_;
};

}  // namespace logbook::testing
