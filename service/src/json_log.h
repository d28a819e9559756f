// logbookd's JSON log lines (--log-format json), for collectors that parse
// logs: one object per line,
//   {"time":"2026-12-07T17:20:01.123456Z","level":"info","logger":"logbookd","message":"..."}
// with the time in UTC and the message escaped as a JSON string (invalid
// UTF-8 replaced by U+FFFD). Thread-safe as spdlog's formatters are.
#pragma once

#include <memory>

#include "spdlog/formatter.h"

namespace logbook::service {

std::unique_ptr<spdlog::formatter> JsonLogFormatter();

}  // namespace logbook::service
