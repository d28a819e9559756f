// Test support: the throwaway PostgreSQL cluster started by
// tests/pg_cluster.sh (a CTest fixture), and fresh databases in it.
#pragma once

#include <string>

namespace logbook::testing {

// A variable from the file named by $LOGBOOK_TEST_ENV (written by
// pg_cluster.sh start). Aborts the test binary when it is missing.
std::string TestEnv(const std::string& name);

// Superuser DSN of the test cluster's `postgres` database.
std::string AdminDsn();

// DSN of `database` in the test cluster as `user`.
std::string DsnFor(const std::string& database, const std::string& user = "logbook_admin");

// `dsn` (a DSN of this file's functions) as `role` instead: logbook_app for
// what logbookd does, logbook_redactor for its admin connection.
std::string AsRole(const std::string& dsn, const std::string& role);

// Creates a new, empty database with a unique name and returns its name.
std::string CreateDatabase();

// Creates a new database owned by logbook_owner (and its schema public);
// returns its name.
std::string CreateOwnedDatabase();

// Creates a new database owned by logbook_owner, which applies every
// embedded migration; returns its superuser DSN.
std::string CreateMigratedDatabase();

// Both run `sql` in a session of the default tenant (SET logbook.tenant =
// 'default', migrations/0021_tenants.sql); `sql` may set another.

// Runs `sql` (one value) on `dsn` and returns the value as text ("" for NULL).
std::string QueryValue(const std::string& dsn, const std::string& sql);

// Runs `sql` on `dsn`; returns "" or the error message.
std::string Exec(const std::string& dsn, const std::string& sql);

}  // namespace logbook::testing
