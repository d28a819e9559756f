-- Signed checkpoints (docs/receipts.md "Signed checkpoints"): logbookd's
-- Ed25519 signature over the log hash of every event up to a position. The
-- private key never comes here; a checkpoint proves the log up to its
-- position to anyone holding the public key, the database's owner
-- notwithstanding. Written only through logbook.add_checkpoint; append-only
-- like the log.
CREATE TABLE logbook.checkpoints (
  id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  log_position  bigint      NOT NULL UNIQUE CHECK (log_position >= 0),
  log_hash      bytea       NOT NULL CHECK (octet_length(log_hash) = 32),
  created_at    timestamptz NOT NULL,
  key_id        bytea       NOT NULL CHECK (octet_length(key_id) = 32),
  signature     bytea       NOT NULL CHECK (octet_length(signature) = 64)
);
COMMENT ON TABLE logbook.checkpoints IS
  'logbookd''s Ed25519 signatures over the log hash of every event up to a position; '
  'append-only.';
CREATE TRIGGER checkpoints_reject_changes BEFORE UPDATE OR DELETE ON logbook.checkpoints
  FOR EACH ROW EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER checkpoints_reject_truncate BEFORE TRUNCATE ON logbook.checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION logbook.reject_history_change();
GRANT SELECT ON logbook.checkpoints TO logbook_app;
