// The database schema: the files of migrations/, embedded at build time.
//
// Two kinds of file (docs/operations.md "Migrations"):
//   NNNN_name.sql                versioned: applied once, in order, never edited
//                                afterwards (tables, indexes, triggers, data
//                                moves, drops); recorded in
//                                logbook.schema_migrations.
//   functions/NAME.sql,          definitions: the current text of one SQL
//   views/NAME.sql               function or view each, applied after the
//                                versioned files whenever their checksum
//                                differs from the one recorded in
//                                logbook.schema_definitions.
//
// Every function here opens its own connection; all are thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace logbook::store {

struct Migration {
  int version = 0;        // Versioned files: from the name (0001_initial.sql -> 1); else 0.
  std::string name;       // "0001_initial.sql", or "functions/publish.sql" for a definition.
  std::string sql;        // The file's bytes.
  std::string checksum;   // SHA-256 of the bytes, lowercase hex.
};

// A schema: its versioned files and its definitions.
struct MigrationSet {
  std::vector<Migration> versioned;    // By version.
  std::vector<Migration> definitions;  // functions/ then views/, each by name.

  // The versioned files up to `version`, without definitions: what a binary
  // of that schema version applied before definitions existed. For tests.
  MigrationSet Through(int version) const;
  // The highest version, 0 when there is none.
  int latest_version() const { return versioned.empty() ? 0 : versioned.back().version; }
};

// The files built into this binary.
const MigrationSet& EmbeddedMigrations();

// Reads `dir`/NNNN_name.sql, `dir`/functions/*.sql and `dir`/views/*.sql
// (either folder may be missing). INVALID_ARGUMENT for a badly named or
// duplicate-numbered file, NOT_FOUND for no directory.
absl::StatusOr<MigrationSet> LoadMigrationsFromDir(const std::string& dir);

// SHA-256 of `bytes` as lowercase hex.
std::string Sha256Hex(absl::string_view bytes);

// One row of `migrate status`.
struct MigrationState {
  int version = 0;   // 0 for a definition.
  std::string name;
  enum class State {
    kApplied,  // Recorded with the file's checksum.
    kPending,  // Not recorded: `migrate up` applies it.
    kEdited,   // A versioned file recorded with another checksum: refused.
    kChanged,  // A definition recorded with another checksum: `migrate up` applies it again.
    kUnknown,  // Recorded, but this binary has no such file.
  } state = State::kPending;
  std::string applied_checksum;  // Empty when pending.
  std::string applied_at;        // Empty when pending.
};

// Compares `known` with what the database at `dsn` records: the versioned
// files, then the definitions. Read-only.
absl::StatusOr<std::vector<MigrationState>> MigrationStatus(const std::string& dsn,
                                                            const MigrationSet& known);

// A function or view whose definition in the database is not what the
// definition files create.
struct DefinitionDrift {
  std::string file;     // The definition file; empty when no file defines the object.
  std::string object;   // "function logbook.f(argument types)" or "view logbook.v".
  std::string problem;  // "differs from the file", "is missing", "is defined by no file".
};

// Compares the functions and views of schema logbook in the database at
// `dsn` with what `known`'s definition files create, by applying every file
// inside a transaction that it rolls back: it changes nothing, but needs the
// rights `migrate up` needs (FAILED_PRECONDITION otherwise). Empty: the
// database holds exactly the files' definitions.
absl::StatusOr<std::vector<DefinitionDrift>> FindDefinitionDrift(const std::string& dsn,
                                                                 const MigrationSet& known);

// Applies every pending versioned file in order, each in its own
// transaction, then, in one transaction, every definition whose file's
// checksum differs from the recorded one (or is not recorded), holding an
// advisory lock throughout so concurrent runners wait for each other.
// FAILED_PRECONDITION (and nothing applied) when an applied versioned file's
// checksum differs from its file; FAILED_PRECONDITION naming the file when
// one fails (it is rolled back; the files applied before it stay applied).
// `progress` is told each file as it starts. With `reapply_definitions`,
// every definition is applied, changed or not: that restores functions and
// views edited by hand (FindDefinitionDrift). Returns what was applied now
// (empty: already up to date).
absl::StatusOr<MigrationSet> MigrateUp(
    const std::string& dsn, const MigrationSet& known,
    const std::function<void(const Migration&)>& progress = nullptr,
    bool reapply_definitions = false);

// What the server checks at start-up.
struct SchemaCheck {
  int version = 0;  // The highest versioned file applied.
  // Definitions recorded with another checksum than this binary's files
  // (the database was migrated by another Logbook version), one line each.
  std::vector<std::string> warnings;
};

// OK when every versioned file in `known` is applied unedited and every
// definition is recorded; FAILED_PRECONDITION naming the first missing or
// edited file otherwise.
absl::StatusOr<SchemaCheck> CheckSchema(const std::string& dsn, const MigrationSet& known);

}  // namespace logbook::store
