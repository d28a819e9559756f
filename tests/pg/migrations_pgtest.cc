// Migrations and roles against a real PostgreSQL.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "logbook/store/event_store.h"
#include "logbook/store/migrations.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::AsRole;
using testing::CreateDatabase;
using testing::CreateMigratedDatabase;
using testing::CreateOwnedDatabase;
using testing::DsnFor;
using testing::Exec;
using testing::QueryValue;

// A folder holding copies of the embedded migrations plus `extra` files.
std::string MigrationsDir(const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  // Every folder made here is deleted when the test binary exits.
  static struct Made {
    std::vector<std::filesystem::path> dirs;
    ~Made() {
      for (const auto& d : dirs) std::filesystem::remove_all(d);
    }
  } made;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("logbook-migrations-" + std::to_string(getpid()) + "-" +
                    std::to_string(made.dirs.size()));
  made.dirs.push_back(dir);
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::filesystem::create_directories((dir / name).parent_path());
    std::ofstream(dir / name, std::ios::binary) << bytes;
  };
  for (const Migration& m : EmbeddedMigrations().versioned) write(m.name, m.sql);
  for (const Migration& m : EmbeddedMigrations().definitions) write(m.name, m.sql);
  for (const auto& [name, bytes] : extra) write(name, bytes);
  return dir.string();
}

TEST(Migrations, EmbeddedFilesAreNumberedAndChecksummed) {
  const auto& all = EmbeddedMigrations().versioned;
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].version, 1);
  EXPECT_EQ(all[0].name, "0001_initial.sql");
  EXPECT_EQ(all[0].checksum, Sha256Hex(all[0].sql));
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Migrations, UpTwiceIsANoOp) {
  const std::string dsn = DsnFor(CreateDatabase());
  std::vector<std::string> progress;
  auto first = MigrateUp(dsn, EmbeddedMigrations(),
                         [&](const Migration& m) { progress.push_back(m.name); });
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->versioned.size(), EmbeddedMigrations().versioned.size());
  EXPECT_EQ(first->definitions.size(), EmbeddedMigrations().definitions.size());
  EXPECT_EQ(progress.front(), "0001_initial.sql");
  const std::string recorded =
      QueryValue(dsn, "SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) "
                      "FROM logbook.schema_migrations");

  auto second = MigrateUp(dsn, EmbeddedMigrations());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->versioned.empty());
  EXPECT_TRUE(second->definitions.empty());
  EXPECT_EQ(QueryValue(dsn, "SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) "
                            "FROM logbook.schema_migrations"),
            recorded);
  EXPECT_EQ(recorded.substr(0, 2 + 64), "1:" + EmbeddedMigrations().versioned[0].checksum);
  auto version = CheckSchema(dsn, EmbeddedMigrations());
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(version->version, EmbeddedMigrations().latest_version());
  EXPECT_TRUE(version->warnings.empty());
}

TEST(Migrations, ConcurrentRunnersApplyEachFileOnce) {
  const std::string dsn = DsnFor(CreateDatabase());
  absl::StatusOr<MigrationSet> a, b;
  std::thread t1([&] { a = MigrateUp(dsn, EmbeddedMigrations()); });
  std::thread t2([&] { b = MigrateUp(dsn, EmbeddedMigrations()); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->versioned.size() + b->versioned.size(), EmbeddedMigrations().versioned.size());
  EXPECT_EQ(a->definitions.size() + b->definitions.size(),
            EmbeddedMigrations().definitions.size());
  EXPECT_EQ(QueryValue(dsn, "SELECT count(*) FROM logbook.schema_migrations"),
            std::to_string(EmbeddedMigrations().versioned.size()));
  EXPECT_EQ(QueryValue(dsn, "SELECT count(*) FROM logbook.schema_definitions"),
            std::to_string(EmbeddedMigrations().definitions.size()));
}

TEST(Migrations, AnEditedAppliedMigrationIsRefused) {
  const std::string dsn = DsnFor(CreateDatabase());
  const std::string dir = MigrationsDir();
  auto original = LoadMigrationsFromDir(dir);
  ASSERT_TRUE(original.ok());
  ASSERT_TRUE(MigrateUp(dsn, *original).ok());

  std::ofstream(dir + "/0001_initial.sql", std::ios::app) << "\n-- an innocent edit\n";
  std::ofstream(dir + "/0900_next.sql") << "CREATE TABLE logbook.next_thing (id int);\n";
  auto edited = LoadMigrationsFromDir(dir);
  ASSERT_TRUE(edited.ok());
  auto refused = MigrateUp(dsn, *edited);
  EXPECT_EQ(refused.status(),
            absl::FailedPreconditionError(
                "migration 0001_initial.sql was edited after it was applied (the database "
                "recorded checksum " + original->versioned[0].checksum + ", the file now has " +
                edited->versioned[0].checksum +
                "); restore the original file and add a new migration instead"));
  EXPECT_EQ(QueryValue(dsn, "SELECT to_regclass('logbook.next_thing') IS NULL"), "t");
  EXPECT_EQ(CheckSchema(dsn, *edited).status().code(), absl::StatusCode::kFailedPrecondition);

  auto states = MigrationStatus(dsn, *edited);
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), edited->versioned.size() + edited->definitions.size());
  EXPECT_EQ((*states)[0].state, MigrationState::State::kEdited);
  const MigrationState& next = (*states)[edited->versioned.size() - 1];
  EXPECT_EQ(next.name, "0900_next.sql");
  EXPECT_EQ(next.state, MigrationState::State::kPending);
}

TEST(Migrations, AFailingMigrationIsRolledBackAndNamed) {
  const std::string dsn = DsnFor(CreateDatabase());
  auto known = LoadMigrationsFromDir(MigrationsDir(
      {{"0901_half.sql", "CREATE TABLE logbook.half (id int);\nSELEC 1;\n"}}));
  ASSERT_TRUE(known.ok());
  auto result = MigrateUp(dsn, *known);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("migration 0901_half.sql failed and was rolled back"),
            absl::string_view::npos)
      << result.status();
  EXPECT_NE(result.status().message().find("SQLSTATE 42601"), absl::string_view::npos);
  EXPECT_EQ(QueryValue(dsn, "SELECT to_regclass('logbook.half') IS NULL"), "t");
  EXPECT_EQ(QueryValue(dsn, "SELECT max(version) FROM logbook.schema_migrations"),
            std::to_string(EmbeddedMigrations().latest_version()));
}

TEST(Migrations, ServerSchemaCheckNamesWhatIsMissing) {
  const std::string empty = DsnFor(CreateDatabase());
  EXPECT_EQ(CheckSchema(empty, EmbeddedMigrations()).status(),
            absl::FailedPreconditionError(
                "the database has no Logbook schema (logbook.schema_migrations is missing): run "
                "`logbook migrate up --database DSN` first"));
  const std::string dsn = CreateMigratedDatabase();
  auto newer = LoadMigrationsFromDir(MigrationsDir({{"0999_future.sql", "SELECT 1;"}}));
  ASSERT_TRUE(newer.ok());
  EXPECT_EQ(CheckSchema(dsn, *newer).status(),
            absl::FailedPreconditionError(
                "the database schema is at version " +
                std::to_string(EmbeddedMigrations().latest_version()) +
                " but this logbookd needs migration 0999_future.sql: run `logbook migrate up "
                "--database DSN`"));
}

TEST(Migrations, BadFileNamesAreRejected) {
  EXPECT_EQ(LoadMigrationsFromDir(MigrationsDir({{"2_oops.sql", ""}})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadMigrationsFromDir(MigrationsDir({{"0001_again.sql", ""}})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadMigrationsFromDir("/nonexistent/dir").status().code(),
            absl::StatusCode::kNotFound);
}

class RolesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The owner role creates and migrates its own database.
    database_ = CreateDatabase();
    ASSERT_EQ(Exec(testing::AdminDsn(),
                   "ALTER DATABASE " + database_ + " OWNER TO logbook_owner"),
              "");
    ASSERT_EQ(Exec(DsnFor(database_), "ALTER SCHEMA public OWNER TO logbook_owner"), "");
    owner_ = DsnFor(database_, "logbook_owner");
    auto applied = MigrateUp(owner_, EmbeddedMigrations());
    ASSERT_TRUE(applied.ok()) << applied.status();
    app_ = DsnFor(database_, "logbook_app");
    StoreOptions options;
    options.dsn = app_;
    auto store = EventStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    NewEvent hi;
    hi.type = "A";
    hi.data = "hi";
    hi.content_type = "text/plain";
    ASSERT_TRUE((*store)->Append("r-1", ExpectedVersion::Any(), {hi}).ok());
    store_ = *std::move(store);
  }
  std::unique_ptr<EventStore> store_;
  std::string database_, owner_, app_;
};

TEST_F(RolesTest, ApplicationRoleCannotChangeHistory) {
  EXPECT_NE(Exec(app_, "UPDATE logbook.event_log SET data = '\\x00'")
                .find("permission denied for table event_log"),
            std::string::npos);
  EXPECT_NE(Exec(app_, "DELETE FROM logbook.event_log").find("permission denied"),
            std::string::npos);
  EXPECT_NE(Exec(app_, "TRUNCATE logbook.event_log").find("permission denied"),
            std::string::npos);
  EXPECT_NE(Exec(app_, "DELETE FROM logbook.receipts").find("permission denied"),
            std::string::npos);
  EXPECT_NE(Exec(app_, "DROP TABLE logbook.event_log").find("must be owner"), std::string::npos);
  EXPECT_EQ(QueryValue(app_, "SELECT encode(data, 'escape') FROM logbook.event_log"), "hi");
}

TEST_F(RolesTest, TriggerRejectsChangesEvenFromTheOwner) {
  const std::string expected = "UPDATE on logbook.event_log is not allowed; history is append-only";
  EXPECT_NE(Exec(owner_, "UPDATE logbook.event_log SET data = '\\x00'").find(expected),
            std::string::npos);
  EXPECT_NE(Exec(owner_, "DELETE FROM logbook.event_log")
                .find("DELETE on logbook.event_log is not allowed"),
            std::string::npos);
  EXPECT_NE(Exec(owner_, "TRUNCATE logbook.event_log")
                .find("TRUNCATE on logbook.event_log is not allowed"),
            std::string::npos);
  // Receipts are columns of event_log behind the logbook.receipts view.
  EXPECT_NE(Exec(owner_, "UPDATE logbook.receipts SET hash = sha256('x')").find(expected),
            std::string::npos);
  const std::string inserted = Exec(owner_, "INSERT INTO logbook.receipts (global_position) VALUES (9)");
  // Row-level security refuses it first: a row of no tenant.
  EXPECT_NE(inserted.find("new row violates row-level security policy for table \"event_log\""),
            std::string::npos)
      << inserted;
  EXPECT_EQ(QueryValue(owner_, "SELECT count(*) FROM logbook.event_log"), "1");
}

TEST_F(RolesTest, OnlyTheRedactorRoleRedacts) {
  // Setting the guard's switch does not give the app role UPDATE rights...
  EXPECT_NE(Exec(app_, "SET logbook.redacting = 'on'; UPDATE logbook.event_log SET data = ''")
                .find("permission denied for table event_log"),
            std::string::npos);
  // ...nor may it call logbook.redact: a store without an admin connection
  // gets PERMISSION_DENIED, and nothing changes.
  EXPECT_EQ(store_->RedactEvent("r-1", 0, "GDPR request 7", Writer{}).status(),
            absl::PermissionDeniedError(
                "redact r-1@0: logbookd's database role may not do this (SQLSTATE 42501)"));
  EXPECT_EQ(QueryValue(owner_, "SELECT count(*) || '/' || count(redaction_reason) "
                               "FROM logbook.event_log"),
            "1/0");
  // The store redacts on its admin connection, as logbook_redactor.
  StoreOptions options;
  options.dsn = app_;
  options.admin_dsn = DsnFor(database_, "logbook_redactor");
  auto admin = EventStore::Open(options);
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto redacted = (*admin)->RedactEvent("r-1", 0, "GDPR request 7", Writer{});
  ASSERT_TRUE(redacted.ok()) << redacted.status();
  EXPECT_EQ(redacted->global_position, 1u);
  EXPECT_EQ(redacted->audit_position, 2u);
  EXPECT_EQ(QueryValue(owner_, "SELECT octet_length(data) || '/' || redaction_reason "
                               "FROM logbook.event_log WHERE global_position = 1"),
            "0/GDPR request 7");
  EXPECT_EQ(QueryValue(owner_, "SELECT ok FROM logbook.verify_all()"), "t");
  // The guard still refuses any other change, even from the owner.
  EXPECT_NE(Exec(owner_, "UPDATE logbook.event_log SET event_type = 'B'")
                .find("UPDATE on logbook.event_log is not allowed"),
            std::string::npos);
}

// Events stored before migration 0004 get receipts from its backfill, and
// the chain it writes is the one logbookd continues.
TEST(Migrations, ReceiptsAreBackfilledForEventsStoredBefore0004) {
  const std::string dsn = DsnFor(CreateDatabase());
  const MigrationSet first_three = EmbeddedMigrations().Through(3);
  ASSERT_EQ(first_three.versioned.back().name, "0003_append_index_lookups.sql");
  ASSERT_TRUE(MigrateUp(dsn, first_three).ok());
  for (const char* call :
       {"SELECT * FROM logbook.append_events('a-1', -1, '{11111111-1111-4111-8111-111111111111,"
        "11111111-1111-4111-8111-111111111112}', '{A,B}', '{application/json,text/plain}', "
        "'{c1,\"\"}', '{\"\",x}', '\\x7b7d6869', '{2,1}', '{0,1}')",
        "SELECT * FROM logbook.append_events('b-1', -1, '{11111111-1111-4111-8111-111111111113}', "
        "'{C}', '{text/plain}', '{\"\"}', '{\"\"}', '\\x00', '{1}', '{0}')"}) {
    ASSERT_EQ(Exec(dsn, call), "");
  }
  auto applied = MigrateUp(dsn, EmbeddedMigrations());
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(QueryValue(dsn, "SELECT count(*) FROM logbook.receipts"), "3");
  EXPECT_EQ(QueryValue(dsn, "SELECT ok || '/' || events_checked || '/' || streams_checked "
                            "FROM logbook.verify_all()"),
            "true/3/2");
  StoreOptions options;
  options.dsn = dsn;
  auto store = EventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  NewEvent next;
  next.type = "D";
  next.data = "{}";
  auto appended = (*store)->Append("a-1", ExpectedVersion::Exact(1), {next});
  ASSERT_TRUE(appended.ok()) << appended.status();
  EXPECT_EQ(appended->last_version, 2u);
  // The old events have no writer (v1 receipts, migration 0019); the new one
  // has (v2), and one chain holds both.
  EXPECT_EQ(QueryValue(dsn, "SELECT string_agg(stream_version || ':' || tenant || ':' || "
                            "coalesce(written_by, '-'), ',' ORDER BY stream_version) "
                            "FROM logbook.event_log WHERE stream_id = 'a-1'"),
            "0:default:-,1:default:-,2:default:local");
  auto verification = (*store)->StartVerify("");
  ASSERT_TRUE(verification.ok()) << verification.status();
  while (true) {
    auto done = (*verification)->Step(2);
    ASSERT_TRUE(done.ok()) << done.status();
    if (*done) break;
  }
  EXPECT_FALSE((*verification)->report().first_broken.has_value());
  EXPECT_EQ((*verification)->report().events_checked, 4u);
  EXPECT_EQ(QueryValue(dsn, "SELECT ok || '/' || encode(head_hash, 'hex') "
                            "FROM logbook.verify_stream('a-1')"),
            "true/" + QueryValue(dsn, "SELECT encode(head_hash, 'hex') FROM logbook.streams "
                                      "WHERE stream_id = 'a-1'"));
}

// Migration 0007 moves receipts into event_log only when every event has
// its own receipt: folding would otherwise lose the evidence.
TEST(Migrations, ReceiptsMoveIntoTheEventLogOnlyFromAnIntactLog) {
  const std::string dsn = DsnFor(CreateDatabase());
  const MigrationSet first_six = EmbeddedMigrations().Through(6);
  ASSERT_EQ(first_six.versioned.back().name, "0006_append_plans_use_indexes.sql");
  ASSERT_TRUE(MigrateUp(dsn, first_six).ok());
  ASSERT_EQ(Exec(dsn, "INSERT INTO logbook.event_log (global_position, stream_id, "
                      "stream_version, event_id, event_type, data, metadata, content_type, "
                      "recorded_at) VALUES (1, 'a-1', 0, '11111111-1111-4111-8111-111111111111', "
                      "'A', '{}', '', 'application/json', now())"),
            "");
  auto refused = MigrateUp(dsn, EmbeddedMigrations());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "logbook 0007: the event at position 1 has no receipt"),
            absl::string_view::npos)
      << refused.status();
  EXPECT_EQ(QueryValue(dsn, "SELECT max(version) FROM logbook.schema_migrations"), "6");

  // A receipt whose event is gone is evidence too.
  ASSERT_EQ(Exec(dsn, "INSERT INTO logbook.receipts (global_position, stream_id, stream_version, "
                      "previous_hash, hash, algorithm, data_digest, metadata_digest) VALUES "
                      "(1, 'a-1', 0, sha256('p'), sha256('h'), 'sha256', sha256('d'), "
                      "sha256('m')), (2, 'a-1', 1, sha256('h'), sha256('h2'), 'sha256', "
                      "sha256('d'), sha256('m'))"),
            "");
  refused = MigrateUp(dsn, EmbeddedMigrations());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "the event at position 2 is gone, but its receipt is stored"),
            absl::string_view::npos)
      << refused.status();

  // With exactly its receipt stored the same log migrates, keeping it.
  ASSERT_EQ(Exec(dsn, "SET session_replication_role = replica; "
                      "DELETE FROM logbook.receipts WHERE global_position = 2"),
            "");
  auto applied = MigrateUp(dsn, EmbeddedMigrations());
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(QueryValue(dsn, "SELECT max(version) FROM logbook.schema_migrations"),
            std::to_string(EmbeddedMigrations().latest_version()));
  EXPECT_EQ(QueryValue(dsn, "SELECT (previous_hash, hash, data_digest, metadata_digest) = "
                            "(sha256('p'), sha256('h'), sha256('d'), sha256('m')) AND "
                            "algorithm = 'sha256' FROM logbook.receipts"),
            "t");
}

// The schema as pg_dump --schema-only prints it, and which files the
// database records, with their checksums.
std::string SchemaOf(const std::string& dsn) {
  const std::string command =
      testing::TestEnv("LOGBOOK_TEST_PG_BINDIR") + "/pg_dump --schema-only '" + dsn + "'";
  std::string dump;
  FILE* out = popen(command.c_str(), "r");
  EXPECT_NE(out, nullptr) << command;
  if (out == nullptr) return "";
  char line[8192];
  while (fgets(line, sizeof line, out) != nullptr) {
    // pg_dump's \restrict lines carry a random key per run.
    if (absl::StartsWith(line, "\\restrict ") || absl::StartsWith(line, "\\unrestrict ")) {
      continue;
    }
    dump += line;
  }
  EXPECT_EQ(pclose(out), 0) << command;
  return dump + "\n-- recorded:\n" +
         QueryValue(dsn, "SELECT string_agg(version || ' ' || name || ' ' || checksum, E'\\n' "
                         "ORDER BY version) FROM logbook.schema_migrations") +
         "\n" +
         QueryValue(dsn, "SELECT string_agg(name || ' ' || checksum, E'\\n' ORDER BY name) "
                         "FROM logbook.schema_definitions");
}

// "" when `a` and `b` are equal, else the first line where they differ.
std::string FirstDifference(const std::string& a, const std::string& b) {
  const std::vector<absl::string_view> x = absl::StrSplit(a, '\n'), y = absl::StrSplit(b, '\n');
  for (size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
    const absl::string_view l = i < x.size() ? x[i] : "<end>", r = i < y.size() ? y[i] : "<end>";
    if (l != r) {
      return absl::StrCat("line ", i + 1, ": '", l, "' where a fresh install has '", r, "'");
    }
  }
  return "";
}

// Every schema version a database may be at when this binary upgrades it
// (as the binaries of that version left it, without definitions) ends up
// exactly where a fresh install does, and both hold exactly what the
// definition files define: every function and view has one current file.
TEST(Migrations, AFreshInstallAndEveryUpgradeEndIdentical) {
  const std::string fresh = CreateMigratedDatabase();
  const std::string expected = SchemaOf(fresh);
  ASSERT_NE(expected.find("CREATE FUNCTION logbook.append_cached("), std::string::npos);
  auto drift = FindDefinitionDrift(AsRole(fresh, "logbook_owner"), EmbeddedMigrations());
  ASSERT_TRUE(drift.ok()) << drift.status();
  for (const DefinitionDrift& d : *drift) {
    ADD_FAILURE() << d.file << ": " << d.object << " " << d.problem;
  }

  for (int version = 1; version < EmbeddedMigrations().latest_version(); ++version) {
    const std::string name = CreateOwnedDatabase(), dsn = DsnFor(name),
                      owner = DsnFor(name, "logbook_owner");
    ASSERT_TRUE(MigrateUp(owner, EmbeddedMigrations().Through(version)).ok());
    auto upgraded = MigrateUp(owner, EmbeddedMigrations());
    ASSERT_TRUE(upgraded.ok()) << "from version " << version << ": " << upgraded.status();
    EXPECT_EQ(upgraded->definitions.size(), EmbeddedMigrations().definitions.size());
    EXPECT_EQ(FirstDifference(SchemaOf(dsn), expected), "")
        << "upgraded from schema version " << version;
  }
}

// A definition whose file changed is applied again by `migrate up`; the
// changed ones go in together or not at all.
TEST(Migrations, ChangedDefinitionsAreAppliedAgainAllOrNone) {
  const std::string dsn = DsnFor(CreateDatabase());
  const std::string dir = MigrationsDir();
  ASSERT_TRUE(MigrateUp(dsn, *LoadMigrationsFromDir(dir)).ok());
  const std::string checksum_sql =
      "SELECT checksum FROM logbook.schema_definitions WHERE name = 'functions/position_at.sql'";
  const std::string before = QueryValue(dsn, checksum_sql);

  std::ofstream(dir + "/functions/position_at.sql", std::ios::app) << "-- reworded\n";
  auto changed = LoadMigrationsFromDir(dir);
  ASSERT_TRUE(changed.ok());
  auto states = MigrationStatus(dsn, *changed);
  ASSERT_TRUE(states.ok());
  for (const MigrationState& s : *states) {
    EXPECT_EQ(s.state, s.name == "functions/position_at.sql" ? MigrationState::State::kChanged
                                                              : MigrationState::State::kApplied)
        << s.name;
  }
  auto check = CheckSchema(dsn, *changed);
  ASSERT_TRUE(check.ok()) << check.status();
  ASSERT_EQ(check->warnings.size(), 1u);
  EXPECT_EQ(check->warnings[0].find("definition functions/position_at.sql in the database "
                                    "(applied "),
            0u)
      << check->warnings[0];

  std::ofstream(dir + "/functions/zz_broken.sql")
      << "CREATE OR REPLACE FUNCTION logbook.zz_broken() RETURNS int LANGUAGE sql "
         "AS $$ SELEC 1 $$;";
  auto broken = MigrateUp(dsn, *LoadMigrationsFromDir(dir));
  ASSERT_EQ(broken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(broken.status().message().find(
                "definition functions/zz_broken.sql failed; no definition was applied (0 "
                "versioned migration(s) applied before stay applied): SQLSTATE 42601"),
            0u)
      << broken.status();
  EXPECT_EQ(QueryValue(dsn, checksum_sql), before);

  std::filesystem::remove(dir + "/functions/zz_broken.sql");
  std::vector<std::string> progress;
  auto applied = MigrateUp(dsn, *changed, [&](const Migration& m) { progress.push_back(m.name); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(applied->versioned.empty());
  ASSERT_EQ(applied->definitions.size(), 1u);
  EXPECT_EQ(applied->definitions[0].name, "functions/position_at.sql");
  EXPECT_EQ(progress, std::vector<std::string>{"functions/position_at.sql"});
  EXPECT_EQ(QueryValue(dsn, checksum_sql), Sha256Hex(applied->definitions[0].sql));
  EXPECT_TRUE(CheckSchema(dsn, *changed)->warnings.empty());
}

// `migrate verify` finds a function edited by hand or added beside the
// files, without changing anything, and only with the owner's rights.
TEST(Migrations, DriftFromTheDefinitionFilesIsNamed) {
  const std::string dsn = CreateMigratedDatabase(), owner = AsRole(dsn, "logbook_owner");
  ASSERT_EQ(Exec(dsn, "CREATE OR REPLACE FUNCTION logbook.position_at(p_time timestamptz) "
                      "RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT 0::bigint $$; "
                      "CREATE FUNCTION logbook.extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$"),
            "");
  auto drift = FindDefinitionDrift(owner, EmbeddedMigrations());
  ASSERT_TRUE(drift.ok()) << drift.status();
  ASSERT_EQ(drift->size(), 2u);
  EXPECT_EQ((*drift)[0].file, "functions/position_at.sql");
  EXPECT_EQ((*drift)[0].object, "function logbook.position_at(timestamp with time zone)");
  EXPECT_EQ((*drift)[0].problem, "differs from the file");
  EXPECT_EQ((*drift)[1].file, "");
  EXPECT_EQ((*drift)[1].object, "function logbook.extra()");
  EXPECT_EQ((*drift)[1].problem, "is defined by no file");
  // Nothing was changed: the hand-made body is still there.
  EXPECT_EQ(QueryValue(dsn, "SELECT logbook.position_at(now())"), "0");

  // migrate up restores it only when asked to apply every definition.
  auto up = MigrateUp(owner, EmbeddedMigrations());
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_TRUE(up->definitions.empty());
  auto reapplied = MigrateUp(owner, EmbeddedMigrations(), nullptr, /*reapply_definitions=*/true);
  ASSERT_TRUE(reapplied.ok()) << reapplied.status();
  EXPECT_EQ(reapplied->definitions.size(), EmbeddedMigrations().definitions.size());
  drift = FindDefinitionDrift(owner, EmbeddedMigrations());
  ASSERT_TRUE(drift.ok()) << drift.status();
  ASSERT_EQ(drift->size(), 1u);
  EXPECT_EQ((*drift)[0].object, "function logbook.extra()");
  EXPECT_EQ(QueryValue(dsn, "SELECT prosrc LIKE '%WHILE lo < hi LOOP%' FROM pg_proc "
                            "WHERE oid = 'logbook.position_at'::regproc"),
            "t");

  const std::string database = QueryValue(dsn, "SELECT current_database()");
  auto as_app = FindDefinitionDrift(DsnFor(database, "logbook_app"), EmbeddedMigrations());
  EXPECT_EQ(as_app.status().code(), absl::StatusCode::kFailedPrecondition) << as_app.status();
}

// logbookd refuses a database that lacks one of its definitions.
TEST(Migrations, ServerSchemaCheckNamesAMissingDefinition) {
  const std::string dsn = CreateMigratedDatabase();
  ASSERT_EQ(Exec(dsn, "DELETE FROM logbook.schema_definitions "
                      "WHERE name = 'functions/publish.sql'"),
            "");
  EXPECT_EQ(CheckSchema(dsn, EmbeddedMigrations()).status(),
            absl::FailedPreconditionError(
                "the database lacks the definition functions/publish.sql that this logbookd "
                "needs: run `logbook migrate up --database DSN`"));
}

}  // namespace
}  // namespace logbook::store
