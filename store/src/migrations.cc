#include "logbook/store/migrations.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "logbook/store/status_macros.h"
#include "pg_errors.h"
#include "receipts.h"

namespace logbook::store {

// Defined in the generated embedded_migrations.cc: {name, bytes} pairs, the
// name relative to migrations/ ("0001_initial.sql", "functions/publish.sql").
extern const std::vector<std::pair<std::string, std::string>>& EmbeddedMigrationFiles();

namespace {

// pg_advisory_lock key held while migrating: "logbook" in ASCII. The SQL
// functions' lock keys are in migrations/functions/lock_keys.sql; this one is
// taken before that schema exists.
constexpr int64_t kMigrationLockKey = 0x6c6f67626f6f6b;

// The folders of definitions, in the order they are applied: a view may use
// a function.
constexpr const char* kDefinitionFolders[] = {"functions", "views"};

absl::StatusOr<Migration> MakeMigration(const std::string& name, std::string sql) {
  static const std::regex kVersioned(R"(^(\d{4})_[A-Za-z0-9_]+\.sql$)");
  static const std::regex kDefinition(R"(^(functions|views)/[a-z0-9_]+\.sql$)");
  std::smatch m;
  Migration migration;
  migration.name = name;
  if (std::regex_match(name, m, kVersioned)) {
    if (!absl::SimpleAtoi(m[1].str(), &migration.version) || migration.version == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("migration file '", name, "': numbers start at 0001"));
    }
  } else if (!std::regex_match(name, kDefinition)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "migration file '", name, "': expected a name like 0001_initial.sql (NNNN_words.sql, "
                                  "NNNN from 0001), functions/name.sql or views/name.sql"));
  }
  migration.checksum = Sha256Hex(sql);
  migration.sql = std::move(sql);
  return migration;
}

// Sorts `all` into versioned files (by version) and definitions (by
// folder, then name); INVALID_ARGUMENT for two files of one number.
absl::StatusOr<MigrationSet> Sorted(std::vector<Migration> all) {
  MigrationSet set;
  for (Migration& m : all) {
    (m.version > 0 ? set.versioned : set.definitions).push_back(std::move(m));
  }
  std::sort(set.versioned.begin(), set.versioned.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < set.versioned.size(); ++i) {
    if (set.versioned[i].version == set.versioned[i - 1].version) {
      return absl::InvalidArgumentError(absl::StrCat("migrations '", set.versioned[i - 1].name,
                                                     "' and '", set.versioned[i].name,
                                                     "' have the same number"));
    }
  }
  auto folder_rank = [](const Migration& m) {
    return absl::StartsWith(m.name, kDefinitionFolders[0]) ? 0 : 1;
  };
  std::sort(set.definitions.begin(), set.definitions.end(),
            [&](const Migration& a, const Migration& b) {
              return std::make_pair(folder_rank(a), a.name) <
                     std::make_pair(folder_rank(b), b.name);
            });
  return set;
}

struct Applied {
  std::string name;
  std::string checksum;
  std::string applied_at;
};

// What schema_migrations records by version, and schema_definitions by name
// (empty for tables that do not exist yet).
struct Recorded {
  std::map<int, Applied> versioned;
  std::map<std::string, Applied> definitions;
};

Recorded ReadRecorded(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  Recorded recorded;
  constexpr char kAppliedAt[] =
      "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
  if (tx.exec("SELECT to_regclass('logbook.schema_migrations') IS NOT NULL")[0][0].as<bool>()) {
    for (const auto& row : tx.exec(absl::StrCat(
             "SELECT version, name, checksum, ", kAppliedAt, " FROM logbook.schema_migrations"))) {
      recorded.versioned[row[0].as<int>()] =
          Applied{row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>()};
    }
  }
  if (tx.exec("SELECT to_regclass('logbook.schema_definitions') IS NOT NULL")[0][0].as<bool>()) {
    for (const auto& row : tx.exec(absl::StrCat("SELECT name, checksum, ", kAppliedAt,
                                                " FROM logbook.schema_definitions"))) {
      const std::string name = row[0].as<std::string>();
      recorded.definitions[name] =
          Applied{name, row[1].as<std::string>(), row[2].as<std::string>()};
    }
  }
  return recorded;
}

// Appends the state of each of `known` as `recorded` (keyed by `key`) has
// it, `mismatch` for another checksum, then the recorded files none of
// `known` is.
template <typename Key, typename KeyOf>
void AddStates(const std::vector<Migration>& known, std::map<Key, Applied> recorded,
               MigrationState::State mismatch, KeyOf key, std::vector<MigrationState>& states) {
  for (const Migration& m : known) {
    MigrationState& s = states.emplace_back();
    s.version = m.version;
    s.name = m.name;
    auto it = recorded.find(key(m));
    if (it == recorded.end()) continue;
    s.state = it->second.checksum == m.checksum ? MigrationState::State::kApplied : mismatch;
    s.applied_checksum = it->second.checksum;
    s.applied_at = it->second.applied_at;
    recorded.erase(it);
  }
  for (const auto& [k, a] : recorded) {
    int version = 0;  // A definition's.
    if constexpr (std::is_same_v<Key, int>) version = k;
    states.push_back({version, a.name, MigrationState::State::kUnknown, a.checksum,
                      a.applied_at});
  }
}

std::string EditedMessage(const Migration& m, const Applied& a) {
  return absl::StrCat("migration ", m.name, " was edited after it was applied (the database "
                      "recorded checksum ", a.checksum, ", the file now has ", m.checksum,
                      "); restore the original file and add a new migration instead");
}

// The definitions whose file differs from what the database records.
std::vector<const Migration*> Outdated(const MigrationSet& known, const Recorded& recorded) {
  std::vector<const Migration*> outdated;
  for (const Migration& d : known.definitions) {
    auto it = recorded.definitions.find(d.name);
    if (it == recorded.definitions.end() || it->second.checksum != d.checksum) {
      outdated.push_back(&d);
    }
  }
  return outdated;
}

constexpr char kRecordDefinitionSql[] =
    "INSERT INTO logbook.schema_definitions (name, checksum) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now(),"
    " applied_by = current_user";

// Every function and view of schema logbook: "function logbook.f(args)" or
// "view logbook.v" -> its definition and grants, and whether the current
// transaction created or replaced it.
struct LiveDefinition {
  std::string text;
  bool touched = false;
};
std::map<std::string, LiveDefinition> LiveDefinitions(pqxx::transaction_base& tx) {
  std::map<std::string, LiveDefinition> live;
  for (const auto& row : tx.exec(
           "SELECT 'function ' || p.oid::regprocedure::text,"
           " pg_get_functiondef(p.oid) || coalesce(p.proacl::text, ''),"
           " p.xmin = pg_current_xact_id()::xid"
           " FROM pg_proc p WHERE p.pronamespace = 'logbook'::regnamespace"
           " UNION ALL "
           "SELECT 'view ' || c.oid::regclass::text,"
           " pg_get_viewdef(c.oid) || coalesce(c.relacl::text, ''),"
           " r.xmin = pg_current_xact_id()::xid"
           " FROM pg_class c JOIN pg_rewrite r ON r.ev_class = c.oid"
           " WHERE c.relnamespace = 'logbook'::regnamespace AND c.relkind = 'v'")) {
    live[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<bool>()};
  }
  return live;
}

}  // namespace

MigrationSet MigrationSet::Through(int version) const {
  MigrationSet set;
  for (const Migration& m : versioned) {
    if (m.version <= version) set.versioned.push_back(m);
  }
  return set;
}

std::string Sha256Hex(absl::string_view bytes) { return Hex(Sha256(bytes)); }

const MigrationSet& EmbeddedMigrations() {
  static const MigrationSet* const migrations = [] {
    std::vector<Migration> all;
    for (const auto& [name, sql] : EmbeddedMigrationFiles()) {
      all.push_back(*MakeMigration(name, sql));  // Names are checked at build time.
    }
    return new MigrationSet(*Sorted(std::move(all)));
  }();
  return *migrations;
}

absl::StatusOr<MigrationSet> LoadMigrationsFromDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("migrations directory '", dir, "' does not exist"));
  }
  std::vector<Migration> all;
  auto read_folder = [&](const std::filesystem::path& folder,
                         const std::string& prefix) -> absl::Status {
    if (!std::filesystem::is_directory(folder, ec)) return absl::OkStatus();
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      if (entry.path().extension() != ".sql") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      LOGBOOK_ASSIGN_OR_RETURN(
          Migration m, MakeMigration(prefix + entry.path().filename().string(), bytes.str()));
      all.push_back(std::move(m));
    }
    return absl::OkStatus();
  };
  LOGBOOK_RETURN_IF_ERROR(read_folder(dir, ""));
  for (const char* folder : kDefinitionFolders) {
    LOGBOOK_RETURN_IF_ERROR(
        read_folder(std::filesystem::path(dir) / folder, absl::StrCat(folder, "/")));
  }
  return Sorted(std::move(all));
}

absl::StatusOr<std::vector<MigrationState>> MigrationStatus(const std::string& dsn,
                                                            const MigrationSet& known) {
  return CatchPqxx("read migration status",
                   [&]() -> absl::StatusOr<std::vector<MigrationState>> {
    pqxx::connection conn(dsn);
    Recorded recorded = ReadRecorded(conn);
    std::vector<MigrationState> states;
    AddStates(known.versioned, std::move(recorded.versioned), MigrationState::State::kEdited,
              [](const Migration& m) { return m.version; }, states);
    std::sort(states.begin(), states.end(),
              [](const auto& a, const auto& b) { return a.version < b.version; });
    AddStates(known.definitions, std::move(recorded.definitions),
              MigrationState::State::kChanged, [](const Migration& m) { return m.name; }, states);
    return states;
  });
}

absl::StatusOr<std::vector<DefinitionDrift>> FindDefinitionDrift(const std::string& dsn,
                                                                 const MigrationSet& known) {
  return CatchPqxx("compare the database's definitions with the files",
                   [&]() -> absl::StatusOr<std::vector<DefinitionDrift>> {
    pqxx::connection conn(dsn);
    pqxx::nontransaction(conn).exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    pqxx::work tx(conn);
    const std::map<std::string, LiveDefinition> before = LiveDefinitions(tx);
    std::vector<DefinitionDrift> drift;
    std::set<std::string> defined;
    for (const Migration& d : known.definitions) {
      try {
        tx.exec(d.sql);
      } catch (const pqxx::insufficient_privilege& e) {
        return absl::FailedPreconditionError(absl::StrCat(
            "comparing the definitions needs the role `migrate up` runs as (the owner): ",
            d.name, ": ", e.what()));
      }
      for (const auto& [object, after] : LiveDefinitions(tx)) {
        if (!after.touched || !defined.insert(object).second) continue;
        auto was = before.find(object);
        if (was == before.end()) {
          drift.push_back({d.name, object, "is missing"});
        } else if (was->second.text != after.text) {
          drift.push_back({d.name, object, "differs from the file"});
        }
      }
    }
    for (const auto& [object, live] : before) {
      if (defined.count(object) == 0) drift.push_back({"", object, "is defined by no file"});
    }
    tx.abort();
    return drift;
  });
}

absl::StatusOr<MigrationSet> MigrateUp(const std::string& dsn, const MigrationSet& known,
                                       const std::function<void(const Migration&)>& progress,
                                       bool reapply_definitions) {
  return CatchPqxx("migrate", [&]() -> absl::StatusOr<MigrationSet> {
    pqxx::connection conn(dsn);
    // Session-level lock: a second runner waits here until the first is done
    // and then finds nothing left to apply. Released when `conn` closes.
    pqxx::nontransaction(conn).exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    const std::map<int, Applied> applied = ReadRecorded(conn).versioned;
    for (const Migration& m : known.versioned) {
      auto it = applied.find(m.version);
      if (it != applied.end() && it->second.checksum != m.checksum) {
        return absl::FailedPreconditionError(EditedMessage(m, it->second));
      }
    }
    MigrationSet done;
    for (const Migration& m : known.versioned) {
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
            "migration ", m.name, " failed and was rolled back (", done.versioned.size(),
            " applied before it stay applied): SQLSTATE ", e.sqlstate(), ": ", e.what()));
      }
      done.versioned.push_back(m);
    }
    // The definitions that changed, all or none: together they are one
    // consistent version of the functions.
    const std::vector<const Migration*> outdated =
        Outdated(known, reapply_definitions ? Recorded{} : ReadRecorded(conn));
    if (outdated.empty()) return done;
    pqxx::work tx(conn);
    for (const Migration* d : outdated) {
      if (progress) progress(*d);
      try {
        pqxx::subtransaction file(tx, d->name);
        file.exec(d->sql);
        file.exec_params(kRecordDefinitionSql, d->name, d->checksum);
        file.commit();
      } catch (const pqxx::sql_error& e) {
        return absl::FailedPreconditionError(absl::StrCat(
            "definition ", d->name, " failed; no definition was applied (",
            done.versioned.size(), " versioned migration(s) applied before stay applied): "
            "SQLSTATE ", e.sqlstate(), ": ", e.what()));
      }
      done.definitions.push_back(*d);
    }
    tx.commit();
    return done;
  });
}

absl::StatusOr<SchemaCheck> CheckSchema(const std::string& dsn, const MigrationSet& known) {
  return CatchPqxx("check the database schema", [&]() -> absl::StatusOr<SchemaCheck> {
    pqxx::connection conn(dsn);
    const Recorded recorded = ReadRecorded(conn);
    if (recorded.versioned.empty()) {
      return absl::FailedPreconditionError(
          "the database has no Logbook schema (logbook.schema_migrations is missing): run "
          "`logbook migrate up --database DSN` first");
    }
    SchemaCheck check;
    check.version = recorded.versioned.rbegin()->first;
    for (const Migration& m : known.versioned) {
      auto it = recorded.versioned.find(m.version);
      if (it == recorded.versioned.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database schema is at version ", check.version,
            " but this logbookd needs migration ", m.name,
            ": run `logbook migrate up --database DSN`"));
      }
      if (it->second.checksum != m.checksum) {
        return absl::FailedPreconditionError(EditedMessage(m, it->second));
      }
    }
    for (const Migration& d : known.definitions) {
      auto it = recorded.definitions.find(d.name);
      if (it == recorded.definitions.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database lacks the definition ", d.name,
            " that this logbookd needs: run `logbook migrate up --database DSN`"));
      }
      if (it->second.checksum != d.checksum) {
        check.warnings.push_back(absl::StrCat(
            "definition ", d.name, " in the database (applied ", it->second.applied_at,
            ") differs from this logbookd's; if this logbookd is the newer one, run `logbook "
            "migrate up --database DSN`"));
      }
    }
    return check;
  });
}

}  // namespace logbook::store
