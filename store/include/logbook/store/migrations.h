// Versioned SQL migrations: the files in migrations/, embedded at build time.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace logbook::store {

struct Migration {
  int version = 0;        // From the file name: 0001_initial.sql -> 1.
  std::string name;       // The file name.
  std::string sql;        // The file's bytes.
  std::string checksum;   // SHA-256 of the bytes, lowercase hex.
};

// The migrations built into this binary, in version order.
const std::vector<Migration>& EmbeddedMigrations();

// Reads NNNN_name.sql files from `dir`, in version order. INVALID_ARGUMENT
// for a badly named or duplicate-numbered file, NOT_FOUND for no directory.
absl::StatusOr<std::vector<Migration>> LoadMigrationsFromDir(const std::string& dir);

// SHA-256 of `bytes` as lowercase hex.
std::string Sha256Hex(absl::string_view bytes);

// One row of `migrate status`.
struct MigrationState {
  int version = 0;
  std::string name;
  enum class State { kApplied, kPending, kEdited, kUnknown } state = State::kPending;
  std::string applied_checksum;  // Empty when pending.
  std::string applied_at;        // Empty when pending.
};

// Compares `known` with what the database at `dsn` records. Read-only.
absl::StatusOr<std::vector<MigrationState>> MigrationStatus(const std::string& dsn,
                                                            const std::vector<Migration>& known);

// Applies every pending migration in order, each in its own transaction,
// holding an advisory lock so concurrent runners wait for each other.
// FAILED_PRECONDITION (and nothing applied) when an applied migration's
// checksum differs from its file. `progress` is told each file as it starts.
// Returns the migrations applied now (empty: already up to date).
absl::StatusOr<std::vector<Migration>> MigrateUp(
    const std::string& dsn, const std::vector<Migration>& known,
    const std::function<void(const Migration&)>& progress = nullptr);

// For the server at start-up: OK with the highest applied version when every
// migration in `known` is applied unedited; FAILED_PRECONDITION naming the
// first missing or edited migration otherwise.
absl::StatusOr<int> CheckSchema(const std::string& dsn, const std::vector<Migration>& known);

}  // namespace logbook::store
