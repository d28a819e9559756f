-- The receipts, one row per event, as columns of logbook.event_log hold them
-- (previous hash, hash, digests of data and metadata; docs/receipts.md).
-- Read-only in effect: updating it updates event_log, whose triggers refuse.
CREATE OR REPLACE VIEW logbook.receipts AS
  SELECT e.global_position, e.stream_id, e.stream_version,
         e.receipt_previous_hash AS previous_hash, e.receipt_hash AS hash,
         'sha256'::text AS algorithm, e.data_digest, e.metadata_digest
    FROM logbook.event_log e;

GRANT SELECT ON logbook.receipts TO logbook_app;
