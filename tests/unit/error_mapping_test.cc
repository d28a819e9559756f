// libpqxx exceptions -> absl::Status -> gRPC status, and the array literals
// that carry parameters to PostgreSQL.
#include <gtest/gtest.h>

#include <pqxx/except>

#include "convert.h"
#include "logbook/store/event_store.h"
#include "pg_array.h"
#include "pg_errors.h"

namespace logbook {
namespace {

template <typename E, typename... Args>
absl::StatusCode CodeFor(Args&&... args) {
  return store::StatusFromException(std::make_exception_ptr(E(std::forward<Args>(args)...)),
                                    "op")
      .code();
}

TEST(StatusFromException, MapsEachLibpqxxExceptionOnce) {
  EXPECT_EQ(CodeFor<pqxx::unique_violation>("dup", "", "23505"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeFor<pqxx::serialization_failure>("ser"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeFor<pqxx::deadlock_detected>("dl"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeFor<pqxx::broken_connection>("gone"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeFor<pqxx::too_many_connections>("full"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeFor<pqxx::in_doubt_error>("doubt"), absl::StatusCode::kUnknown);
  EXPECT_EQ(CodeFor<pqxx::data_exception>("bad", "", "22P02"),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeFor<pqxx::check_violation>("chk", "", "23514"),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeFor<pqxx::undefined_table>("no table", "", "42P01"),
            absl::StatusCode::kInternal);
  EXPECT_EQ(CodeFor<std::runtime_error>("boom"), absl::StatusCode::kInternal);
}

TEST(StatusFromException, InternalErrorsNameTheSqlState) {
  absl::Status s = store::StatusFromException(
      std::make_exception_ptr(pqxx::undefined_table("no table", "SELECT", "42P01")),
      "append to stream 'x'");
  EXPECT_EQ(s, absl::InternalError("append to stream 'x': database error (SQLSTATE 42P01)"));
}

// A role without a privilege is named as such (libpqxx 6.4 throws it
// without its SQLSTATE).
TEST(StatusFromException, AMissingPrivilegeIsPermissionDenied) {
  for (const char* sqlstate : {"42501", ""}) {
    absl::Status s = store::StatusFromException(
        std::make_exception_ptr(pqxx::insufficient_privilege("denied", "SELECT", sqlstate)),
        "redact r-1@0");
    EXPECT_EQ(s, absl::PermissionDeniedError(
                     "redact r-1@0: logbookd's database role may not do this (SQLSTATE 42501)"));
  }
}

// PostgreSQL's own text (its "ERROR:" lines) stays in the log: a value the
// database refused is named by its SQLSTATE, a lost connection by libpq's
// first line without the severity.
TEST(StatusFromException, NoPostgreSqlTextReachesAClient) {
  const absl::Status refused = store::StatusFromException(
      std::make_exception_ptr(pqxx::data_exception(
          "ERROR:  value \"2147483648\" is out of range for type integer\n", "INSERT", "22003")),
      "save a snapshot of stream 's-1'");
  EXPECT_EQ(refused, absl::InvalidArgumentError("save a snapshot of stream 's-1': the database "
                                                "refused a value (SQLSTATE 22003)"));
  const absl::Status check = store::StatusFromException(
      std::make_exception_ptr(pqxx::check_violation(
          "ERROR:  new row violates check constraint \"x\"\n", "INSERT", "23514")),
      "op");
  EXPECT_EQ(check, absl::InvalidArgumentError("op: the database refused a value (SQLSTATE 23514)"));
  const absl::Status gone = store::StatusFromException(
      std::make_exception_ptr(pqxx::broken_connection(
          "FATAL:  terminating connection due to administrator command\nserver closed the "
          "connection unexpectedly\n")),
      "op");
  EXPECT_EQ(gone, absl::UnavailableError(
                      "op: database unavailable: terminating connection due to administrator "
                      "command"));
}

TEST(ToGrpcStatus, KeepsCodeAndMessage) {
  grpc::Status s = service::ToGrpcStatus(absl::AbortedError("wrong expected version"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(s.error_message(), "wrong expected version");
  EXPECT_EQ(service::ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(service::ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(RejectUnknownEnumValues, NamesTheFieldAndTheKnownValues) {
  v1::ReadAllRequest request;
  EXPECT_TRUE(service::RejectUnknownEnumValues(request).ok());
  ASSERT_TRUE(request.MergeFromString(std::string("\x10\x09", 2)));  // direction = 9
  EXPECT_EQ(service::RejectUnknownEnumValues(request),
            absl::InvalidArgumentError("direction: unknown value 9 (FORWARD=0, BACKWARD=1)"));
  v1::ReadAllRequest backward;
  ASSERT_TRUE(backward.MergeFromString(std::string("\x10\x01\x58\x05", 4)));  // + field 11
  EXPECT_TRUE(service::RejectUnknownEnumValues(backward).ok());  // Unknown non-enum: ignored.
  EXPECT_EQ(service::FromProto(backward.direction()), store::Direction::kBackward);
}

TEST(BinaryArrays, ArrayRecvFormat) {
  // Dimensions, flags, element type, then per dimension length and lower
  // bound, then each element's length and bytes.
  EXPECT_EQ(store::TextArray({}).Param().str(), std::string("\0\0\0\0\0\0\0\0\0\0\0\x19", 12));
  EXPECT_EQ(store::TextArray({"a\"", ""}).Param().str(),
            std::string("\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\2\0\0\0\1"
                        "\0\0\0\2a\"\0\0\0\0", 30));
  EXPECT_EQ(store::Int8Array({258, -2}).Param().str(),
            std::string("\0\0\0\1\0\0\0\0\0\0\0\x14\0\0\0\2\0\0\0\1"
                        "\0\0\0\x08\0\0\0\0\0\0\1\2"
                        "\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xfe", 44));
  store::BinaryArray uuids(store::BinaryArray::Type::kUuid);
  uuids.Add(std::string(16, '\x7f'));
  EXPECT_EQ(uuids.size(), 1u);
  EXPECT_EQ(uuids.Param().str(),
            std::string("\0\0\0\1\0\0\0\0\0\0\x0b\x86\0\0\0\1\0\0\0\1\0\0\0\x10", 24) +
                std::string(16, '\x7f'));
}

TEST(BinaryArrays, RowArrayRecordRecvFormat) {
  // The array header with the composite type's OID; each row is its length,
  // its field count, then each field's type OID, length (-1: NULL), bytes.
  store::BinaryRowArray rows(0x4001, 4);
  EXPECT_EQ(rows.Param().str(), std::string("\0\0\0\0\0\0\0\0\0\0\x40\x01", 12));
  rows.StartRow();
  rows.AddText("ab");
  rows.AddTextOrNull("");
  rows.AddInt8(258);
  rows.AddBytea(std::string("\0\xff", 2));
  rows.StartRow();
  rows.AddTextOrNull("c");
  rows.AddInt8(std::nullopt);
  rows.AddUuid(std::string(16, '\x7f'));
  rows.AddBytea("");
  EXPECT_EQ(rows.size(), 2u);
  const std::string header("\0\0\0\1\0\0\0\0\0\0\x40\x01\0\0\0\2\0\0\0\1", 20);
  const std::string first("\0\0\0\x30\0\0\0\4"
                          "\0\0\0\x19\0\0\0\2ab"
                          "\0\0\0\x19\xff\xff\xff\xff"
                          "\0\0\0\x14\0\0\0\x08\0\0\0\0\0\0\1\2"
                          "\0\0\0\x11\0\0\0\2\0\xff", 52);
  const std::string second = std::string("\0\0\0\x35\0\0\0\4"
                                         "\0\0\0\x19\0\0\0\1c"
                                         "\0\0\0\x14\xff\xff\xff\xff"
                                         "\0\0\x0b\x86\0\0\0\x10", 33) +
                             std::string(16, '\x7f') + std::string("\0\0\0\x11\0\0\0\0", 8);
  EXPECT_EQ(rows.Param().str(), header + first + second);
}

TEST(BinaryArrays, RowArrayRejectsMalformedRows) {
  store::BinaryRowArray rows(0x4001, 2);
  EXPECT_THROW(rows.AddText("before any row"), std::logic_error);
  rows.StartRow();
  EXPECT_THROW(rows.AddUuid("0123456789abcdef0"), std::logic_error);
  rows.AddText("one field of two");
  EXPECT_THROW(rows.StartRow(), std::logic_error);
  EXPECT_THROW(rows.Param(), std::logic_error);
}

TEST(BinaryArrays, RejectWhatTheServerWouldMisread) {
  store::BinaryArray versions(store::BinaryArray::Type::kInt8);
  EXPECT_THROW(versions.Add(absl::string_view("text")), std::logic_error);
  store::BinaryArray uuids(store::BinaryArray::Type::kUuid);
  EXPECT_THROW(uuids.Add(absl::string_view("0123456789abcdef0")), std::logic_error);
  EXPECT_THROW(uuids.Add(int64_t{1}), std::logic_error);
  EXPECT_EQ(versions.size(), 0u);
  EXPECT_EQ(uuids.size(), 0u);
}

}  // namespace
}  // namespace logbook
