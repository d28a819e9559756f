#include "test_env.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <pqxx/pqxx>

#include "logbook/store/migrations.h"

namespace logbook::testing {

std::string TestEnv(const std::string& name) {
  static const std::map<std::string, std::string> vars = [] {
    std::map<std::string, std::string> out;
    const char* path = std::getenv("LOGBOOK_TEST_ENV");
    std::ifstream in(path ? path : "");
    for (std::string line; std::getline(in, line);) {
      auto eq = line.find('=');
      if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
  }();
  auto it = vars.find(name);
  if (it == vars.end()) {
    std::cerr << "test environment variable " << name
              << " missing: run the tests through ctest, which starts PostgreSQL first\n";
    std::abort();
  }
  return it->second;
}

std::string AdminDsn() { return TestEnv("LOGBOOK_TEST_ADMIN_DSN"); }

std::string DsnFor(const std::string& database, const std::string& user) {
  return "postgresql://" + user + "@127.0.0.1:" + TestEnv("LOGBOOK_TEST_PG_PORT") + "/" +
         database;
}

std::string CreateDatabase() {
  static std::atomic<int> counter{0};
  const std::string name =
      "t_" + std::to_string(getpid()) + "_" + std::to_string(counter.fetch_add(1));
  pqxx::connection conn(AdminDsn());
  pqxx::nontransaction(conn).exec("CREATE DATABASE " + conn.quote_name(name));
  return name;
}

std::string AsRole(const std::string& dsn, const std::string& role) {
  const size_t scheme = dsn.find("://"), at = dsn.find('@');
  if (scheme == std::string::npos || at == std::string::npos) {
    std::cerr << "AsRole: not a postgresql://user@host URL: " << dsn << "\n";
    std::abort();
  }
  return dsn.substr(0, scheme + 3) + role + dsn.substr(at);
}

std::string CreateOwnedDatabase() {
  const std::string name = CreateDatabase();
  pqxx::connection conn(DsnFor(name));
  pqxx::nontransaction(conn).exec("ALTER DATABASE " + conn.quote_name(name) +
                                  " OWNER TO logbook_owner");
  pqxx::nontransaction(conn).exec("ALTER SCHEMA public OWNER TO logbook_owner");
  return name;
}

std::string CreateMigratedDatabase() {
  // As in production, the owner role migrates its own database: a
  // superuser owner would not be bound by row-level security
  // (migrations/0021_tenants.sql).
  const std::string name = CreateOwnedDatabase();
  const std::string dsn = DsnFor(name);
  auto applied = store::MigrateUp(DsnFor(name, "logbook_owner"), store::EmbeddedMigrations());
  if (!applied.ok()) {
    std::cerr << "migrate up failed: " << applied.status() << "\n";
    std::abort();
  }
  return dsn;
}

std::string QueryValue(const std::string& dsn, const std::string& sql) {
  pqxx::connection conn(dsn);
  pqxx::nontransaction(conn).exec("SET logbook.tenant = 'default'");
  pqxx::result r = pqxx::nontransaction(conn).exec(sql);
  return r[0][0].is_null() ? "" : r[0][0].as<std::string>();
}

std::string Exec(const std::string& dsn, const std::string& sql) {
  try {
    pqxx::connection conn(dsn);
    pqxx::nontransaction(conn).exec("SET logbook.tenant = 'default'");
    pqxx::nontransaction(conn).exec(sql);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace logbook::testing
