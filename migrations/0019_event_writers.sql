-- Who wrote each event (docs/receipts.md, docs/security.md): written_by is
-- the principal logbookd authenticated for the append (or for the deletion
-- or redaction an $audit event records), tenant the tenant the stream
-- belongs to. logbookd sets both; no client can. An event with a writer has
-- a logbook-receipt-v2 receipt, which covers both; the events stored before
-- this migration have none and keep their logbook-receipt-v1 receipts,
-- which still verify. Every event so far belongs to the tenant 'default'.
ALTER TABLE logbook.event_log
  ADD COLUMN tenant     text NOT NULL DEFAULT 'default',
  ADD COLUMN written_by text;
-- The default was for the rows above; every append names its tenant.
ALTER TABLE logbook.event_log ALTER COLUMN tenant DROP DEFAULT;

ALTER TYPE logbook.new_event ADD ATTRIBUTE tenant text, ADD ATTRIBUTE written_by text;

-- Each takes the writer now; functions/ has their definitions. (A database
-- created by this version has none of them yet: definitions come after
-- the numbered migrations.)
DROP FUNCTION IF EXISTS logbook.receipt_hash(bytea, text, bigint, uuid, text, text, timestamptz,
                                             bigint, text, text, bytea, bytea);
DROP FUNCTION IF EXISTS logbook.append_audit(text, text);
DROP FUNCTION IF EXISTS logbook.delete_stream(text, bigint, boolean);
DROP FUNCTION IF EXISTS logbook.redact(text, bigint, text);
