#include "console_files.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace logbook::service {

std::string ConsoleContentType(absl::string_view name) {
  static constexpr std::pair<absl::string_view, absl::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json; charset=utf-8"}};
  for (const auto& [extension, type] : kTypes) {
    if (absl::EndsWith(name, extension)) return std::string(type);
  }
  return "application/octet-stream";
}

absl::StatusOr<std::string> ReadConsoleFile(absl::string_view name, const std::string& dir) {
  if (name.empty()) name = "index.html";
  // Plain names only: nothing outside the folder can be asked for.
  if (name.front() == '.' || name.find_first_of("/\\") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a console file name"));
  }
  if (!dir.empty()) {
    std::ifstream in(absl::StrCat(dir, "/", name), std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("no console file ", name, " in ", dir));
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  }
  for (const ConsoleFile& f : ConsoleFiles()) {
    if (f.name == name) return std::string(f.bytes);
  }
  return absl::NotFoundError(absl::StrCat("no console file ", name));
}

}  // namespace logbook::service
