#include "logbook/store/migrations.h"


#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "logbook/store/status_macros.h"
#include "pg_errors.h"
#include "receipts.h"

namespace logbook::store {

// Defined in the generated embedded_migrations.cc: {file name, bytes} pairs.
extern const std::vector<std::pair<std::string, std::string>>& EmbeddedMigrationFiles();

namespace {

// pg_advisory_lock key held while migrating: "logbook" in ASCII.
constexpr int64_t kMigrationLockKey = 0x6c6f67626f6f6b;

absl::StatusOr<Migration> MakeMigration(const std::string& name, std::string sql) {
  static const std::regex kName(R"(^(\d{4})_[A-Za-z0-9_]+\.sql$)");
  std::smatch m;
  int version = 0;
  if (!std::regex_match(name, m, kName) || !absl::SimpleAtoi(m[1].str(), &version) ||
      version == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "migration file '", name, "': expected a name like 0001_initial.sql (NNNN_words.sql, "
                                  "NNNN from 0001)"));
  }
  Migration migration;
  migration.version = version;
  migration.name = name;
  migration.checksum = Sha256Hex(sql);
  migration.sql = std::move(sql);
  return migration;
}

absl::StatusOr<std::vector<Migration>> Sorted(std::vector<Migration> migrations) {
  std::sort(migrations.begin(), migrations.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < migrations.size(); ++i) {
    if (migrations[i].version == migrations[i - 1].version) {
      return absl::InvalidArgumentError(absl::StrCat("migrations '", migrations[i - 1].name,
                                                     "' and '", migrations[i].name,
                                                     "' have the same number"));
    }
  }
  return migrations;
}

struct Applied {
  std::string name;
  std::string checksum;
  std::string applied_at;
};

// What schema_migrations records; empty when the table does not exist yet.
std::map<int, Applied> ReadApplied(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  if (tx.exec("SELECT to_regclass('logbook.schema_migrations') IS NULL")[0][0].as<bool>()) {
    return {};
  }
  std::map<int, Applied> applied;
  for (const auto& row :
       tx.exec("SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM logbook.schema_migrations")) {
    applied[row[0].as<int>()] =
        Applied{row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>()};
  }
  return applied;
}

std::string EditedMessage(const Migration& m, const Applied& a) {
  return absl::StrCat("migration ", m.name, " was edited after it was applied (the database "
                      "recorded checksum ", a.checksum, ", the file now has ", m.checksum,
                      "); restore the original file and add a new migration instead");
}

}  // namespace

std::string Sha256Hex(absl::string_view bytes) { return Hex(Sha256(bytes)); }

const std::vector<Migration>& EmbeddedMigrations() {
  static const std::vector<Migration>* const migrations = [] {
    std::vector<Migration> all;
    for (const auto& [name, sql] : EmbeddedMigrationFiles()) {
      all.push_back(*MakeMigration(name, sql));  // Names are checked at build time.
    }
    return new std::vector<Migration>(*Sorted(std::move(all)));
  }();
  return *migrations;
}

absl::StatusOr<std::vector<Migration>> LoadMigrationsFromDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("migrations directory '", dir, "' does not exist"));
  }
  std::vector<Migration> migrations;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".sql") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    LOGBOOK_ASSIGN_OR_RETURN(Migration m, MakeMigration(entry.path().filename().string(), bytes.str()));
    migrations.push_back(std::move(m));
  }
  return Sorted(std::move(migrations));
}

absl::StatusOr<std::vector<MigrationState>> MigrationStatus(const std::string& dsn,
                                                            const std::vector<Migration>& known) {
  return CatchPqxx("read migration status",
                   [&]() -> absl::StatusOr<std::vector<MigrationState>> {
                     pqxx::connection conn(dsn);
                     std::map<int, Applied> applied = ReadApplied(conn);
                     std::vector<MigrationState> states;
                     for (const Migration& m : known) {
                       MigrationState& s = states.emplace_back();
                       s.version = m.version;
                       s.name = m.name;
                       auto it = applied.find(m.version);
                       if (it == applied.end()) continue;
                       s.state = it->second.checksum == m.checksum
                                     ? MigrationState::State::kApplied
                                     : MigrationState::State::kEdited;
                       s.applied_checksum = it->second.checksum;
                       s.applied_at = it->second.applied_at;
                       applied.erase(it);
                     }
                     for (const auto& [version, a] : applied) {
                       states.push_back({version, a.name, MigrationState::State::kUnknown,
                                         a.checksum, a.applied_at});
                     }
                     std::sort(states.begin(), states.end(),
                               [](const auto& a, const auto& b) { return a.version < b.version; });
                     return states;
                   });
}

absl::StatusOr<std::vector<Migration>> MigrateUp(
    const std::string& dsn, const std::vector<Migration>& known,
    const std::function<void(const Migration&)>& progress) {
  return CatchPqxx("migrate", [&]() -> absl::StatusOr<std::vector<Migration>> {
    pqxx::connection conn(dsn);
    // Session-level lock: a second runner waits here until the first is done
    // and then finds nothing left to apply. Released when `conn` closes.
    pqxx::nontransaction(conn).exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    const std::map<int, Applied> applied = ReadApplied(conn);
    for (const Migration& m : known) {
      auto it = applied.find(m.version);
      if (it != applied.end() && it->second.checksum != m.checksum) {
        return absl::FailedPreconditionError(EditedMessage(m, it->second));
      }
    }
    std::vector<Migration> done;
    for (const Migration& m : known) {
      if (applied.count(m.version)) continue;
      if (progress) progress(m);
      try {
        pqxx::work tx(conn);
        tx.exec(m.sql);
        tx.exec_params(
            "INSERT INTO logbook.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            m.version, m.name, m.checksum);
        tx.commit();
      } catch (const pqxx::sql_error& e) {
        return absl::FailedPreconditionError(absl::StrCat(
            "migration ", m.name, " failed and was rolled back (", done.size(),
            " applied before it stay applied): SQLSTATE ", e.sqlstate(), ": ", e.what()));
      }
      done.push_back(m);
    }
    return done;
  });
}

absl::StatusOr<int> CheckSchema(const std::string& dsn, const std::vector<Migration>& known) {
  return CatchPqxx("check the database schema", [&]() -> absl::StatusOr<int> {
    pqxx::connection conn(dsn);
    const std::map<int, Applied> applied = ReadApplied(conn);
    if (applied.empty()) {
      return absl::FailedPreconditionError(
          "the database has no Logbook schema (logbook.schema_migrations is missing): run "
          "`logbook migrate up --database DSN` first");
    }
    for (const Migration& m : known) {
      auto it = applied.find(m.version);
      if (it == applied.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database schema is at version ", applied.rbegin()->first,
            " but this logbookd needs migration ", m.name,
            ": run `logbook migrate up --database DSN`"));
      }
      if (it->second.checksum != m.checksum) {
        return absl::FailedPreconditionError(EditedMessage(m, it->second));
      }
    }
    return applied.rbegin()->first;
  });
}

}  // namespace logbook::store
