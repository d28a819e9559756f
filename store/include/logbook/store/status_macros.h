// LOGBOOK_RETURN_IF_ERROR / LOGBOOK_ASSIGN_OR_RETURN for absl::Status, which
// bookworm's Abseil (20220623) does not ship.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LOGBOOK_CONCAT_INNER_(a, b) a##b
#define LOGBOOK_CONCAT_(a, b) LOGBOOK_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when it is not OK.
#define LOGBOOK_RETURN_IF_ERROR(expr)                    \
  do {                                                   \
    ::absl::Status logbook_status_ = (expr);             \
    if (!logbook_status_.ok()) return logbook_status_;   \
  } while (0)

// `LOGBOOK_ASSIGN_OR_RETURN(auto x, StatusOrExpr());` declares/assigns the
// value or returns the error from the enclosing function.
#define LOGBOOK_ASSIGN_OR_RETURN(lhs, expr) \
  LOGBOOK_ASSIGN_OR_RETURN_IMPL_(LOGBOOK_CONCAT_(logbook_statusor_, __LINE__), lhs, expr)
#define LOGBOOK_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()
