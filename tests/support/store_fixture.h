// Test support: the fixture of the store's tests against a real PostgreSQL,
// and the store's verification as one line of text.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "logbook/store/event_store.h"

namespace logbook::testing {

// The base of every store gtest that appends: SetUp creates a migrated
// database (dsn_, as the superuser) and opens store_ on it with the options
// given to the constructor, as logbookd runs (dsn as logbook_app, admin_dsn
// as logbook_redactor, both filled in). Tampering and SQL
// checks go to dsn_ behind the store's back. Like a gtest fixture, used
// from the test's thread, except store_, which is thread-safe.
class StoreTest : public ::testing::Test {
 protected:
  explicit StoreTest(store::StoreOptions options = {});

  void SetUp() override;

  // "N/M": the rows of event_log and of streams.
  std::string Rows();

  // Runs `sql` as the superuser with the append-only triggers off; an error
  // fails the test.
  void Tamper(const std::string& sql);

  // Appends acct-1, acct-2 and acct-3, five events each, interleaved:
  // acct-K's version V is at position 3V + K, with data {"n":V} and
  // metadata "mV".
  void Seed();

  // Seed(), then a writer takes positions 16..18 and rolls back (a
  // recorded gap), then acct-1's versions 5 and 6 go to 19 and 20.
  void SeedAroundAGap();

  // Runs a verification of `stream` ("" for the whole log) to its end in
  // pages of 4 events and returns "ok N" (events checked) or "REASON
  // STREAM@VERSION #POSITION" for the first broken event, or the error. For
  // the whole log it also checks that a store walking the log once per
  // stream (each pass holding one stream's chain) finds the same.
  std::string Verify(const std::string& stream);
  // The same from the DBA's SQL functions verify_stream() and verify_all().
  std::string SqlVerifyStream(const std::string& stream);
  std::string SqlVerifyAll();

  store::StoreOptions options_;
  std::string dsn_;
  std::unique_ptr<store::EventStore> store_;

 private:
  std::unique_ptr<store::EventStore> one_stream_per_pass_;  // Opened by Verify("").
};

// `store`'s verification of `tenant`'s `stream` as Verify() describes it,
// one store.
std::string VerifyWith(store::EventStore& store, const std::string& stream,
                       const std::string& tenant = store::kDefaultTenant);

}  // namespace logbook::testing
