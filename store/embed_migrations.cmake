# Writes OUTPUT, a C++ file defining EmbeddedMigrationFiles() with the bytes of
# every file of MIGRATIONS_DIR: NNNN_*.sql, functions/*.sql and views/*.sql,
# named relative to it. Run with cmake -P at build time.
file(GLOB files RELATIVE ${MIGRATIONS_DIR} ${MIGRATIONS_DIR}/*.sql
     ${MIGRATIONS_DIR}/functions/*.sql ${MIGRATIONS_DIR}/views/*.sql)
list(SORT files)
set(body "")
foreach(name ${files})
  if(NOT name MATCHES "^[0-9][0-9][0-9][0-9]_[A-Za-z0-9_]+\\.sql$" AND
     NOT name MATCHES "^(functions|views)/[a-z0-9_]+\\.sql$")
    message(FATAL_ERROR "migrations/${name}: expected a name like 0001_initial.sql, "
                        "functions/name.sql or views/name.sql")
  endif()
  file(READ ${MIGRATIONS_DIR}/${name} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
  string(LENGTH "${hex}" hex_length)
  math(EXPR length "${hex_length} / 2")
  string(APPEND body "    {\"${name}\", std::string(std::initializer_list<char>{${bytes}}.begin(), ${length})},\n")
endforeach()
file(WRITE ${OUTPUT}.tmp "// Generated from migrations/ by store/embed_migrations.cmake. Do not edit.
#include <string>
#include <utility>
#include <vector>

namespace logbook::store {
const std::vector<std::pair<std::string, std::string>>& EmbeddedMigrationFiles() {
  static const auto* const files = new std::vector<std::pair<std::string, std::string>>{
${body}  };
  return *files;
}
}  // namespace logbook::store
")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
