-- The application role keeps reading and appending, and loses every direct
-- write: appends, deletions and snapshot saves go through SECURITY DEFINER
-- functions that check what they write (migrations/functions/), so a
-- session holding logbookd's credentials cannot revive a tombstone, move a
-- head, insert an event outside the chain or write to $audit. Redaction
-- moves to its own role, logbook_redactor, which logbookd uses only for
-- admin calls (docs/operations.md "Roles").

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logbook_redactor') THEN
    CREATE ROLE logbook_redactor NOLOGIN;
  END IF;
END;
$$;
GRANT USAGE ON SCHEMA logbook TO logbook_redactor;

REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON logbook.event_log, logbook.streams, logbook.log_head,
  logbook.snapshots, logbook.position_gaps FROM logbook_app;
REVOKE ALL ON SEQUENCE logbook.append_tickets, logbook.positions, logbook.recorded_at_micros
  FROM logbook_app;

-- Replaced by logbook.redact (functions/redact.sql), which also writes the
-- EventRedacted record.
DROP FUNCTION logbook.redact_event(bigint, text);
DELETE FROM logbook.schema_definitions WHERE name = 'functions/redact_event.sql';
