// The web console's static files (service/console/, docs/console.md), built
// into logbookd by service/embed_console.cmake, and how they are served.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace logbook::service {

struct ConsoleFile {
  absl::string_view name;  // "index.html", "app.js", ...
  absl::string_view bytes;
};

// Every file of service/console/ as it was when logbookd was built.
// Thread-safe (made once).
const std::vector<ConsoleFile>& ConsoleFiles();

// The Content-Type a console file is served with, by its extension;
// application/octet-stream for an unknown one. Pure.
std::string ConsoleContentType(absl::string_view name);

// The console file `name` ("" means index.html): from `dir` when it is
// not empty (--console-dir, for working on the console without building
// logbookd), else the built-in copy. NOT_FOUND when there is none;
// INVALID_ARGUMENT for a name that is not a plain file name.
absl::StatusOr<std::string> ReadConsoleFile(absl::string_view name, const std::string& dir);

}  // namespace logbook::service
