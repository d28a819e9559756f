#include "pg_errors.h"

#include <pqxx/except>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace logbook::store {
namespace {

// The first line of a libpq message, without PostgreSQL's severity prefix
// ("FATAL:  ..."): what a client may read of a connection failure.
std::string Clean(absl::string_view what) {
  what = what.substr(0, what.find('\n'));
  for (absl::string_view severity : {"ERROR:", "FATAL:", "PANIC:"}) {
    if (absl::ConsumePrefix(&what, severity)) what = absl::StripLeadingAsciiWhitespace(what);
  }
  return std::string(what);
}

// A value the database refused: input the store's own checks should have
// named. PostgreSQL's text goes to the log, not to the client.
absl::Status Refused(absl::string_view operation, const pqxx::sql_error& e) {
  spdlog::warn("{}: the database refused a value: SQLSTATE {}: {}", std::string(operation),
               e.sqlstate(), Clean(e.what()));
  return absl::InvalidArgumentError(absl::StrCat(
      operation, ": the database refused a value (SQLSTATE ", e.sqlstate(), ")"));
}

}  // namespace

absl::Status StatusFromException(std::exception_ptr error, absl::string_view operation) {
  try {
    std::rethrow_exception(error);
  } catch (const pqxx::unique_violation& e) {
    return absl::AbortedError(absl::StrCat(operation, ": lost a race with a concurrent writer; "
                                                      "re-read and retry"));
  } catch (const pqxx::serialization_failure& e) {
    return absl::AbortedError(absl::StrCat(operation, ": serialization failure; retry"));
  } catch (const pqxx::deadlock_detected& e) {
    return absl::AbortedError(absl::StrCat(operation, ": deadlock detected; retry"));
  } catch (const pqxx::in_doubt_error& e) {
    return absl::UnknownError(absl::StrCat(
        operation, ": the connection broke during commit; the outcome is unknown "
                   "(retrying with the same event ids is safe)"));
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(
        absl::StrCat(operation, ": database unavailable: ", Clean(e.what())));
  } catch (const pqxx::data_exception& e) {
    return Refused(operation, e);
  } catch (const pqxx::check_violation& e) {
    return Refused(operation, e);
  } catch (const pqxx::insufficient_privilege& e) {
    // libpqxx 6.4 leaves e.sqlstate() empty for this one: it is 42501.
    spdlog::error("{}: logbookd's database role lacks a privilege (docs/operations.md "
                  "\"Roles\"): {}", std::string(operation), Clean(e.what()));
    return absl::PermissionDeniedError(absl::StrCat(
        operation, ": logbookd's database role may not do this (SQLSTATE 42501)"));
  } catch (const pqxx::sql_error& e) {
    spdlog::error("{}: SQLSTATE {}: {}", std::string(operation), e.sqlstate(), e.what());
    return absl::InternalError(
        absl::StrCat(operation, ": database error (SQLSTATE ", e.sqlstate(), ")"));
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", std::string(operation), e.what());
    return absl::InternalError(absl::StrCat(operation, ": ", e.what()));
  } catch (...) {
    spdlog::error("{}: unknown exception", std::string(operation));
    return absl::InternalError(absl::StrCat(operation, ": unknown error"));
  }
}

}  // namespace logbook::store
