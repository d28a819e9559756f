#include "http_api.h"

#include <gtest/gtest.h>

#include "console_files.h"

namespace logbook::service {
namespace {

TEST(HttpApiTest, StatusCodesMapToHttpStatuses) {
  EXPECT_EQ(HttpStatusFor(grpc::OK), 200);
  EXPECT_EQ(HttpStatusFor(grpc::INVALID_ARGUMENT), 400);
  EXPECT_EQ(HttpStatusFor(grpc::UNAUTHENTICATED), 401);
  EXPECT_EQ(HttpStatusFor(grpc::PERMISSION_DENIED), 403);
  EXPECT_EQ(HttpStatusFor(grpc::NOT_FOUND), 404);
  EXPECT_EQ(HttpStatusFor(grpc::ALREADY_EXISTS), 409);
  EXPECT_EQ(HttpStatusFor(grpc::FAILED_PRECONDITION), 409);
  EXPECT_EQ(HttpStatusFor(grpc::ABORTED), 412);
  EXPECT_EQ(HttpStatusFor(grpc::RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(HttpStatusFor(grpc::UNAVAILABLE), 503);
  EXPECT_EQ(HttpStatusFor(grpc::DEADLINE_EXCEEDED), 504);
  EXPECT_EQ(HttpStatusFor(grpc::DATA_LOSS), 500);
}

TEST(HttpApiTest, AnAppendBodyBecomesItsRequest) {
  auto r = ParseAppend("order-1",
                       R"({"expected_version": 4, "events": [
                             {"type": "Placed", "data": {"total": 3}, "event_id": "e1",
                              "metadata": {"by": "web"}, "schema_version": 2},
                             {"type": "Raw", "content_type": "text/plain", "data": "hi"},
                             {"type": "Bin", "content_type": "image/png", "data": {"base64": "AAE="}},
                             {"type": "Empty"}]})",
                       "", "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stream_id(), "order-1");
  EXPECT_EQ(r->expected_version().exact(), 4u);
  ASSERT_EQ(r->events_size(), 4);
  EXPECT_EQ(r->events(0).type(), "Placed");
  EXPECT_EQ(r->events(0).data(), R"({"total":3})");
  EXPECT_EQ(r->events(0).metadata(), R"({"by":"web"})");
  EXPECT_EQ(r->events(0).event_id(), "e1");
  EXPECT_EQ(r->events(0).schema_version(), 2u);
  EXPECT_FALSE(r->events(0).has_content_type());  // The server's default, JSON.
  EXPECT_EQ(r->events(1).data(), "hi");
  EXPECT_EQ(r->events(2).data(), std::string("\0\1", 2));
  EXPECT_EQ(r->events(3).data(), "{}");
}

TEST(HttpApiTest, HeadersSayTheExpectedVersionAndWin) {
  const char* body = R"({"expected_version": "any", "events": [{"type": "T"}]})";
  EXPECT_TRUE(ParseAppend("s", body, "", "")->expected_version().has_any());
  EXPECT_EQ(ParseAppend("s", body, "\"7\"", "")->expected_version().exact(), 7u);
  EXPECT_EQ(ParseAppend("s", body, "7", "")->expected_version().exact(), 7u);
  EXPECT_TRUE(ParseAppend("s", body, "", "*")->expected_version().has_no_stream());
  EXPECT_TRUE(ParseAppend("s", R"({"expected_version": "stream_exists", "events": []})", "", "")
                  ->expected_version()
                  .has_stream_exists());
  EXPECT_EQ(ParseAppend("s", body, "-1", "").status().message(),
            "If-Match: '-1' is not a stream version");
  EXPECT_EQ(ParseAppend("s", body, "", "x").status().message(), "If-None-Match: 'x' is not *");
}

TEST(HttpApiTest, ABadBodyIsRefusedNamingWhatIsWrong) {
  auto message = [](const char* body) {
    return std::string(ParseAppend("s", body, "", "").status().message());
  };
  EXPECT_EQ(message("[1]"), "body: not a JSON object");
  EXPECT_EQ(message("{"), "body: not a JSON object");
  EXPECT_EQ(message(R"({"events": {}})"), "events: missing, or not an array");
  EXPECT_EQ(message(R"({"events": [3]})"), "events[0]: not an object");
  EXPECT_EQ(message(R"({"events": [{"type": 3}]})"), "events[0].type: not a string");
  EXPECT_EQ(message(R"({"events": [{"type": "T", "schema_version": -1}]})"),
            "events[0].schema_version: not an unsigned 32-bit integer");
  EXPECT_EQ(message(R"({"events": [{"type": "T", "content_type": "x/y", "data": 3}]})"),
            "events[0].data: with content_type x/y it must be a string or {\"base64\": \"...\"}");
  EXPECT_EQ(
      message(R"({"events": [{"type": "T", "content_type": "x/y", "data": {"base64": "!"}}]})"),
      "events[0].data.base64: not base64");
  EXPECT_EQ(message(R"({"expected_version": "soon", "events": []})"),
            "expected_version: not \"any\", \"no_stream\", \"stream_exists\" or a version");
}

TEST(HttpApiTest, ParkedEventsAreNamedByIdOrAll) {
  absl::StatusOr<v1::ParkedSelection> ids =
      ParseParkedSelection("g", R"({"delivery_ids": [7, 9]})");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->group(), "g");
  EXPECT_EQ(ids->ids().delivery_ids_size(), 2);
  EXPECT_EQ(ids->ids().delivery_ids(1), 9u);
  absl::StatusOr<v1::ParkedSelection> all =
      ParseParkedSelection("g", R"({"all": true, "max_count": 50})");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->has_all());
  EXPECT_EQ(all->max_count(), 50u);
  auto message = [](const char* body) {
    return std::string(ParseParkedSelection("g", body).status().message());
  };
  EXPECT_EQ(message("[]"), "body: not a JSON object");
  EXPECT_EQ(message("{}"), R"(body: give "delivery_ids": [...] or "all": true)");
  EXPECT_EQ(message(R"({"all": true, "delivery_ids": [1]})"),
            R"(body: give "delivery_ids": [...] or "all": true)");
  EXPECT_EQ(message(R"({"all": false})"), R"(body: give "delivery_ids": [...] or "all": true)");
  EXPECT_EQ(message(R"({"all": "yes"})"), "all: not true or false");
  EXPECT_EQ(message(R"({"all": 1})"), "all: not true or false");
  EXPECT_EQ(message(R"({"delivery_ids": []})"), "delivery_ids: not a non-empty array");
  EXPECT_EQ(message(R"({"delivery_ids": [-1]})"), "delivery_ids: not an array of delivery ids");
  EXPECT_EQ(message(R"({"all": true, "max_count": "9"})"), "max_count: not a non-negative integer");
}

TEST(ConsoleFilesTest, TheBuiltInConsoleIsServedByPlainNamesOnly) {
  absl::StatusOr<std::string> index = ReadConsoleFile("", "");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, *ReadConsoleFile("index.html", ""));
  EXPECT_NE(index->find("<html"), std::string::npos);
  for (const ConsoleFile& f : ConsoleFiles()) {
    EXPECT_FALSE(f.bytes.empty()) << f.name;
    EXPECT_EQ(*ReadConsoleFile(f.name, ""), f.bytes) << f.name;
  }
  EXPECT_EQ(ReadConsoleFile("../etc/passwd", "").status().message(),
            "'../etc/passwd' is not a console file name");
  EXPECT_EQ(ReadConsoleFile(".hidden", "/tmp").status().message(),
            "'.hidden' is not a console file name");
  EXPECT_EQ(ReadConsoleFile("none.js", "").status().message(), "no console file none.js");
  EXPECT_EQ(ConsoleContentType("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ConsoleContentType("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ConsoleContentType("style.css"), "text/css; charset=utf-8");
  EXPECT_EQ(ConsoleContentType("data.bin"), "application/octet-stream");
}

}  // namespace
}  // namespace logbook::service
