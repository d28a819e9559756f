#include "pg_errors.h"

#include <pqxx/except>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace logbook::store {

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
        absl::StrCat(operation, ": database unavailable: ", e.what()));
  } catch (const pqxx::data_exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(operation, ": ", e.what()));
  } catch (const pqxx::check_violation& e) {
    return absl::InvalidArgumentError(absl::StrCat(operation, ": ", e.what()));
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
