// Translates libpqxx exceptions into absl::Status, once, at the store's edge.
#pragma once

#include <exception>
#include <string_view>

#include "absl/status/status.h"

namespace logbook::store {

// Maps an exception thrown by libpqxx (or anything else) to a status:
//   unique_violation                         ABORTED
//   serialization_failure, deadlock_detected ABORTED
//   broken_connection                        UNAVAILABLE
//   in_doubt_error                           UNKNOWN
//   data_exception, check_violation          INVALID_ARGUMENT (PostgreSQL's text is
//                                            logged, not returned)
//   anything else                            INTERNAL, logged with its SQLSTATE
// `operation` names what failed, e.g. "append to stream 'order-1'".
absl::Status StatusFromException(std::exception_ptr error, absl::string_view operation);

// Runs `fn`, returning its status or the translation of what it threw.
template <typename Fn>
auto CatchPqxx(absl::string_view operation, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (...) {
    return StatusFromException(std::current_exception(), operation);
  }
}

}  // namespace logbook::store
