// Input validation: every limit and malformed input gets its code and a
// message naming the field.
#include <gtest/gtest.h>

#include <set>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"

#include "logbook/store/limits.h"
#include "logbook/store/uuid.h"

namespace logbook::store {
namespace {

std::vector<NewEvent> OneEvent(std::string data = "{}") {
  NewEvent e;
  e.type = "OrderPlaced";
  e.data = std::move(data);
  return {e};
}

absl::Status Check(absl::string_view stream, std::vector<NewEvent> events) {
  return ValidateAppend(Limits{}, stream, events);
}

TEST(ValidateAppend, AcceptsAValidEventAndFillsDefaults) {
  std::vector<NewEvent> events = OneEvent("{\"total\": 5}");
  events[0].content_type = "";
  ASSERT_TRUE(ValidateAppend(Limits{}, "order-42", events).ok());
  EXPECT_EQ(events[0].content_type, "application/json");
  ASSERT_EQ(events[0].event_id.size(), 36u);
  EXPECT_EQ(events[0].event_id[14], '7');  // A new version 7 UUID.
  EXPECT_TRUE(CanonicalUuid("id", events[0].event_id).ok());
}

TEST(ValidateAppend, CanonicalizesGivenEventIds) {
  std::vector<NewEvent> events = OneEvent();
  events[0].event_id = "0F8FAD5B-D9CB-469F-A165-70867728950E";
  ASSERT_TRUE(ValidateAppend(Limits{}, "s", events).ok());
  EXPECT_EQ(events[0].event_id, "0f8fad5b-d9cb-469f-a165-70867728950e");
}

TEST(ValidateAppend, StreamIdLimits) {
  EXPECT_EQ(Check("", OneEvent()), absl::InvalidArgumentError("stream_id: must not be empty"));
  EXPECT_TRUE(Check(std::string(256, 'a'), OneEvent()).ok());
  EXPECT_EQ(Check(std::string(257, 'a'), OneEvent()),
            absl::InvalidArgumentError("stream_id: 257 bytes exceed the limit of 256"));
  EXPECT_EQ(Check("bad\xff", OneEvent()), absl::InvalidArgumentError("stream_id: not valid UTF-8"));
  EXPECT_EQ(Check("a\xc0\xaf", OneEvent()),  // Overlong '/'.
            absl::InvalidArgumentError("stream_id: not valid UTF-8"));
  EXPECT_EQ(Check("tab\there", OneEvent()),
            absl::InvalidArgumentError("stream_id: control characters are not allowed"));
  EXPECT_EQ(Check(std::string("nul\0x", 5), OneEvent()),
            absl::InvalidArgumentError("stream_id: control characters are not allowed"));
  EXPECT_EQ(Check("c1\xc2\x85", OneEvent()),  // U+0085 NEXT LINE.
            absl::InvalidArgumentError("stream_id: control characters are not allowed"));
  EXPECT_EQ(Check("$audit", OneEvent()),
            absl::InvalidArgumentError(
                "stream_id: ids starting with '$' are reserved for system streams"));
  EXPECT_TRUE(Check("bestellung-\xc3\xa4\xe2\x82\xac", OneEvent()).ok());  // "ä€".
}

TEST(ValidateAppend, BatchLimits) {
  EXPECT_EQ(Check("s", {}),
            absl::InvalidArgumentError("events: an append needs at least one event"));
  std::vector<NewEvent> many(1001, OneEvent()[0]);
  EXPECT_EQ(Check("s", many),
            absl::ResourceExhaustedError("events: 1001 events exceed the batch limit of 1000"));
  many.resize(1000);
  EXPECT_TRUE(Check("s", many).ok());

  NewEvent big;
  big.type = "Blob";
  big.content_type = "application/octet-stream";
  big.data = std::string(1 << 20, 'x');
  EXPECT_TRUE(Check("s", {big}).ok());
  big.metadata = "m";
  EXPECT_EQ(Check("s", {big}),
            absl::ResourceExhaustedError(
                "events[0]: data and metadata are 1048577 bytes; the limit is 1048576"));
  big.metadata.clear();
  EXPECT_TRUE(Check("s", {big, big, big, big}).ok());  // Exactly 4 MiB.
  EXPECT_EQ(Check("s", {big, big, big, big, OneEvent("1")[0]}),
            absl::ResourceExhaustedError("events: the batch's data and metadata exceed the "
                                         "limit of 4194304 bytes (reached at events[4])"));
}

TEST(ValidateAppend, EventFields) {
  auto with = [](auto mutate) {
    std::vector<NewEvent> events = OneEvent();
    events.push_back(events[0]);
    mutate(events[1]);
    return Check("s", events);
  };
  EXPECT_EQ(with([](NewEvent& e) { e.type = ""; }),
            absl::InvalidArgumentError("events[1].type: must not be empty"));
  EXPECT_EQ(with([](NewEvent& e) { e.type = std::string(257, 't'); }),
            absl::InvalidArgumentError("events[1].type: 257 bytes exceed the limit of 256"));
  EXPECT_EQ(with([](NewEvent& e) { e.type = "\xe2\x28\xa1"; }),
            absl::InvalidArgumentError("events[1].type: not valid UTF-8"));
  EXPECT_EQ(with([](NewEvent& e) { e.event_id = "not-a-uuid"; }),
            absl::InvalidArgumentError(
                "events[1].event_id: not a UUID (expected the form 8-4-4-4-12 hex digits, "
                "e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)"));
  EXPECT_EQ(with([](NewEvent& e) { e.event_id = "0f8fad5b-d9cb-469f-a165-70867728950g"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with([](NewEvent& e) { e.event_id = "{0f8fad5b-d9cb-469f-a165-70867728950e}"; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with([](NewEvent& e) { e.data = "{\"a\": }"; }),
            absl::InvalidArgumentError(
                "events[1].data: not valid JSON, but content_type is application/json (use "
                "another content type for opaque bytes)"));
  EXPECT_EQ(with([](NewEvent& e) { e.data = ""; }).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with([](NewEvent& e) { e.data = "\"\xff\""; }).code(),  // Invalid UTF-8 in JSON.
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(with([](NewEvent& e) {
                e.content_type = "application/octet-stream";
                e.data = std::string("\0\1\xff", 3);
              }).ok());
  EXPECT_EQ(with([](NewEvent& e) {
              e.content_type = "Application/JSON; charset=utf-8";
              e.data = "nope";
            }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with([](NewEvent& e) { e.correlation_id = std::string(257, 'c'); }),
            absl::InvalidArgumentError(
                "events[1].correlation_id: 257 bytes exceed the limit of 256"));
  EXPECT_EQ(with([](NewEvent& e) { e.causation_id = "a\nb"; }),
            absl::InvalidArgumentError(
                "events[1].causation_id: control characters are not allowed"));
  EXPECT_EQ(with([](NewEvent& e) { e.content_type = std::string(129, 'x'); }),
            absl::InvalidArgumentError(
                "events[1].content_type: 129 bytes exceed the limit of 128"));
}

// JSON data is accepted exactly as RFC 8259 allows, whichever parser decides
// (simdjson first for small documents, nlohmann for what it refuses and for
// large ones): the verdicts below hold on both paths.
TEST(ValidateAppend, JsonVerdicts) {
  auto accepted = [](std::string data) { return Check("s", OneEvent(std::move(data))).ok(); };
  const std::string deep = std::string(2000, '[') + std::string(2000, ']');  // simdjson: > 1024.
  const std::string big_string = "\"" + std::string(20000, 'x') + "\"";  // Past simdjson's cap.
  for (const std::string& valid : {
           std::string("{\"a\" : [1, {\"b\":null}], \"c\": \"\\u00e9\\/\"}"),
           std::string(" \t\r\n[ ]"), std::string("true"), std::string("-0"),
           std::string("1E+2"), std::string("1e-400"), std::string("1.7976931348623157e308"),
           std::string("18446744073709551616"), std::string("-9223372036854775809"),
           std::string("123456789012345678901234567890"), std::string("\"\\ud83d\\ude00\""),
           std::string("\"\\u0000\""), std::string("{\"k\":1,\"k\":2}"),
           std::string("\xef\xbb\xbf{}"), deep, big_string}) {
    EXPECT_TRUE(accepted(valid)) << valid.substr(0, 40);
  }
  for (const std::string& invalid : {
           std::string("1.8e308"), std::string("01"), std::string("1."), std::string(".5"),
           std::string("[1,]"), std::string("[1] 2"), std::string("nul"), std::string(" "),
           std::string("\"\\ud800\""), std::string("\"\\x\""), std::string("\"\x01\""),
           std::string("\"\xed\xa0\x80\""), std::string("\"\xc0\xaf\""),
           std::string("1\0", 2), std::string("{}\0 trailing", 12), deep + "]",
           big_string + "x"}) {
    EXPECT_FALSE(accepted(invalid)) << invalid.substr(0, 40);
  }
}

TEST(ValidateAppend, RejectsRepeatedEventIdsInOneBatch) {
  std::vector<NewEvent> events = OneEvent();
  events[0].event_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  events.push_back(events[0]);
  events[1].event_id = "0F8FAD5B-D9CB-469F-A165-70867728950E";
  EXPECT_EQ(Check("s", events),
            absl::InvalidArgumentError(
                "events[1].event_id: 0f8fad5b-d9cb-469f-a165-70867728950e repeats events[0]"));
}

TEST(ValidateReads, CountAndFilter) {
  const Limits limits;
  EXPECT_TRUE(ValidateReadCount(limits, 0).ok());
  EXPECT_TRUE(ValidateReadCount(limits, 100000).ok());
  EXPECT_EQ(ValidateReadCount(limits, 100001),
            absl::InvalidArgumentError("max_count: 100001 exceeds the limit of 100000"));
  EventFilter filter;
  EXPECT_TRUE(ValidateFilter(limits, filter).ok());
  filter.event_types = {"A", ""};
  EXPECT_EQ(ValidateFilter(limits, filter),
            absl::InvalidArgumentError("filter.event_types[1]: must not be empty"));
  filter.event_types = {};
  filter.category = "bad\xff";
  EXPECT_EQ(ValidateFilter(limits, filter),
            absl::InvalidArgumentError("filter.category: not valid UTF-8"));
}

TEST(Helpers, JsonContentTypeAndUuids) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType(" APPLICATION/json ; charset=utf-8"));
  EXPECT_FALSE(IsJsonContentType("application/jsonx"));
  EXPECT_FALSE(IsJsonContentType("text/plain"));
  EXPECT_EQ(*CanonicalUuid("f", "ABCDEF00-0000-4000-8000-000000000000"),
            "abcdef00-0000-4000-8000-000000000000");
}

TEST(Validation, TraceparentIsW3cVersion00) {
  const std::string good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  EXPECT_TRUE(ValidateTraceparent("t", good).ok());
  const std::string shape =
      " is not a W3C traceparent (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, "
      "lowercase)";
  EXPECT_EQ(ValidateTraceparent("t", "").message(), "t: ''" + shape);
  EXPECT_EQ(ValidateTraceparent("t", "01" + good.substr(2)).message(),
            "t: '01" + good.substr(2) + "'" + shape);  // Only version 00.
  std::string upper = good;
  upper[3] = 'B';
  EXPECT_EQ(ValidateTraceparent("t", upper).message(), "t: '" + upper + "'" + shape);
  EXPECT_EQ(ValidateTraceparent("t", good + "-x").message(), "t: '" + good + "-x'" + shape);
  EXPECT_EQ(ValidateTraceparent("t", std::string(70, 'a')).message(),
            "t: '" + std::string(64, 'a') + "...'" + shape);
  EXPECT_EQ(ValidateTraceparent("t", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
                .message(),
            "t: a traceparent's trace id and parent id must not be all zeros");
  EXPECT_EQ(ValidateTraceparent("t", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")
                .message(),
            "t: a traceparent's trace id and parent id must not be all zeros");
  // An append checks each event's.
  std::vector<NewEvent> events(2);
  for (NewEvent& e : events) {
    e.type = "T";
    e.data = "{}";
    e.traceparent = good;
  }
  EXPECT_TRUE(ValidateAppend(Limits{}, "s-1", events).ok());
  events[1].traceparent = "nope";
  EXPECT_EQ(ValidateAppend(Limits{}, "s-1", events).message(),
            "events[1].traceparent: 'nope'" + shape);
}

// Event ids are version 7 UUIDs: the first 48 bits are the time in Unix
// milliseconds, so ids made in different milliseconds sort by time.
TEST(Helpers, NewUuidIsTimeOrderedVersion7) {
  const int64_t before = absl::ToUnixMillis(absl::Now());
  const std::string id = NewUuid();
  const int64_t after = absl::ToUnixMillis(absl::Now());
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(*CanonicalUuid("id", id), id);  // Canonical, lowercase.
  EXPECT_EQ(id[14], '7');                    // Version.
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);  // Variant 10xx.
  int64_t millis = 0;
  ASSERT_TRUE(absl::SimpleHexAtoi(id.substr(0, 8) + id.substr(9, 4), &millis));
  EXPECT_GE(millis, before);
  EXPECT_LE(millis, after);

  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(NewUuid());
  EXPECT_EQ(ids.size(), 1000u);
}

}  // namespace
}  // namespace logbook::store
