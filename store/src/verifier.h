// Verification of receipts: recomputes every event's receipt hash with
// OpenSSL and walks each stream's chain (the same checks as
// migrations/functions/verify_stream.sql and verify_all.sql).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <pqxx/connection>
#include <pqxx/transaction_base>

#include "absl/status/statusor.h"
#include "logbook/store/checkpoints.h"
#include "logbook/store/event_store.h"

namespace logbook::store {

// Runs one page of work on a pooled connection (the store's RunRead).
using VerifyPage = std::function<absl::StatusOr<bool>(pqxx::connection&)>;
using VerifyRunner = std::function<absl::StatusOr<bool>(absl::string_view, const VerifyPage&)>;

void PrepareVerifyStatements(pqxx::connection& conn);

// Starts verifying `stream_id` (empty: the whole log) as of now: reads the
// head to verify up to in `tx`. NOT_FOUND: no such stream. The whole log is
// walked once per `streams_per_pass` streams, holding their chains in
// memory. With `key` (may be null), the whole log is also checked against
// every checkpoint up to the head that `key` signed: their signatures, and
// the log hash of the events walked at each one's position. Later Steps read
// through `run`, which must outlive the verification.
absl::StatusOr<std::unique_ptr<Verification>> NewVerification(
    pqxx::transaction_base& tx, const std::string& stream_id, size_t streams_per_pass,
    const SigningKey* key, VerifyRunner run);

}  // namespace logbook::store
