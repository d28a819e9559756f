#include "server_fixture.h"

#include "test_env.h"

namespace logbook::testing {

ServerTest::ServerTest(std::vector<std::string> logbookd_args)
    : logbookd_args_(std::move(logbookd_args)) {}

void ServerTest::SetUp() {
  dsn_ = CreateMigratedDatabase();
  StartServer(logbookd_args_);
}

void ServerTest::StartServer(std::vector<std::string> args, int port) {
  stub_.reset();
  server_.reset();  // Stops it, so that `port` is free again.
  // As deployed: the application role, and the redactor for admin calls.
  args.push_back("--admin-database=" + AsRole(dsn_, "logbook_redactor"));
  server_ = std::make_unique<Logbookd>(AsRole(dsn_, "logbook_app"), std::move(args), port);
  ASSERT_TRUE(server_->WaitServing()) << server_->log();
  stub_ = v1::EventStore::NewStub(server_->channel());
}

grpc::Status ServerTest::TryAppend(const v1::AppendRequest& request,
                                   v1::AppendResponse* response, Trailers* trailers,
                                   v1::EventStore::Stub* stub) {
  grpc::ClientContext ctx;
  v1::AppendResponse ignored;
  grpc::Status s =
      (stub != nullptr ? stub : stub_.get())->Append(&ctx, request, response ? response : &ignored);
  if (trailers != nullptr) {
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      trailers->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
  }
  return s;
}

grpc::Status ServerTest::TryAppend(const std::string& stream, std::vector<v1::EventData> events,
                                   v1::AppendResponse* response, v1::EventStore::Stub* stub) {
  return TryAppend(Request(stream, std::move(events)), response, nullptr, stub);
}

v1::AppendResponse ServerTest::Append(const std::string& stream,
                                      std::vector<v1::EventData> events) {
  v1::AppendResponse response;
  grpc::Status s = TryAppend(stream, std::move(events), &response);
  EXPECT_TRUE(s.ok()) << stream << ": " << s.error_message();
  return response;
}

v1::AppendRequest ServerTest::Request(const std::string& stream,
                                      std::vector<v1::EventData> events) {
  v1::AppendRequest r;
  r.set_stream_id(stream);
  for (auto& e : events) *r.add_events() = std::move(e);
  return r;
}

std::pair<std::vector<v1::RecordedEvent>, grpc::Status> ServerTest::ReadStream(
    const std::string& stream, std::optional<uint64_t> until_version) {
  v1::ReadStreamRequest request;
  request.set_stream_id(stream);
  if (until_version) request.set_until_version(*until_version);
  return Read(request);
}

v1::StreamInfo ServerTest::GetStream(const std::string& stream, grpc::Status* status) {
  grpc::ClientContext ctx;
  v1::GetStreamRequest request;
  request.set_stream_id(stream);
  v1::StreamInfo info;
  grpc::Status s = stub_->GetStream(&ctx, request, &info);
  if (status != nullptr) {
    *status = s;
  } else {
    EXPECT_TRUE(s.ok()) << stream << ": " << s.error_message();
  }
  return info;
}

Verified ServerTest::Verify(const v1::VerifyRequest& request) {
  grpc::ClientContext ctx;
  auto reader = stub_->Verify(&ctx, request);
  Verified out;
  v1::VerifyResponse response;
  while (reader->Read(&response)) {
    if (!out.results.empty()) out.result_was_last = false;
    if (response.has_progress()) out.progress.push_back(response.progress());
    if (response.has_result()) out.results.push_back(response.result());
  }
  out.status = reader->Finish();
  return out;
}

Verified ServerTest::VerifyStream(const std::string& stream) {
  v1::VerifyRequest request;
  request.set_stream_id(stream);
  return Verify(request);
}

Verified ServerTest::VerifyAll() {
  v1::VerifyRequest request;
  request.mutable_all();
  return Verify(request);
}

grpc::Status ServerTest::TrySaveSnapshot(const std::string& stream, uint64_t version,
                                         uint32_t schema, const std::string& state,
                                         v1::SaveSnapshotResponse* response) {
  grpc::ClientContext ctx;
  v1::SaveSnapshotRequest request;
  request.set_stream_id(stream);
  request.set_stream_version(version);
  request.set_schema_version(schema);
  request.set_state(state);
  v1::SaveSnapshotResponse ignored;
  return stub_->SaveSnapshot(&ctx, request, response ? response : &ignored);
}

Client ServerTest::NewClient() const {
  ClientOptions options;
  options.address = server_->address();
  return Client(options);
}

}  // namespace logbook::testing
