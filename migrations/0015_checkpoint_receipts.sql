-- What each signed checkpoint hashed: the position and receipt hash of every
-- event it covers, in chunks (docs/receipts.md "Signed checkpoints"). The
-- checkpoint's signature covers them through its log hash, so verification
-- can trust them and name the exact event that differs from what was signed
-- (changed, inserted into the range or removed from it), not only the range.
-- 40 bytes per event: an int8 position (big-endian) then the 32-byte receipt
-- hash. Written only through logbook.add_checkpoint_receipts, before the
-- checkpoint row in the same transaction; append-only like the log.
CREATE TABLE logbook.checkpoint_receipts (
  log_position    bigint NOT NULL,  -- The checkpoint's.
  after_position  bigint NOT NULL,  -- The entries follow the event at this position.
  receipts        bytea  NOT NULL
    CHECK (octet_length(receipts) > 0 AND octet_length(receipts) % 40 = 0),
  PRIMARY KEY (log_position, after_position)
);
COMMENT ON TABLE logbook.checkpoint_receipts IS
  'The (position, receipt hash) of every event a signed checkpoint covers, 40 bytes each, in '
  'chunks that follow each other; append-only.';
CREATE TRIGGER checkpoint_receipts_reject_changes
  BEFORE UPDATE OR DELETE ON logbook.checkpoint_receipts
  FOR EACH ROW EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER checkpoint_receipts_reject_truncate BEFORE TRUNCATE ON logbook.checkpoint_receipts
  FOR EACH STATEMENT EXECUTE FUNCTION logbook.reject_history_change();
GRANT SELECT ON logbook.checkpoint_receipts TO logbook_app;
