-- The record of the current definitions, and what each table is for now.
--
-- From here on migrations/functions/*.sql and migrations/views/*.sql hold
-- every SQL function, trigger function and view as it is now, one per file.
-- `logbook migrate up` applies them after the numbered files, whenever a
-- file's checksum differs from the one recorded here; numbered files keep
-- tables, indexes, triggers, data moves and drops (docs/operations.md).

CREATE TABLE logbook.schema_definitions (
  name        text        PRIMARY KEY,  -- the file under migrations/, e.g. functions/publish.sql
  checksum    text        NOT NULL,     -- SHA-256 of its bytes, lowercase hex
  applied_at  timestamptz NOT NULL DEFAULT now(),
  applied_by  text        NOT NULL DEFAULT current_user
);
GRANT SELECT ON logbook.schema_definitions TO logbook_app;

-- What each table holds today, for \dt+ and pg_dump (the comments in earlier
-- migrations describe the schema as each of them left it).
COMMENT ON TABLE logbook.event_log IS
  'One row per event, with its receipt (the hash chain of its stream). Append-only: triggers '
  'refuse DELETE and TRUNCATE for everyone and every UPDATE but a redaction.';
COMMENT ON TABLE logbook.streams IS
  'One row per stream: version, last position, head receipt hash, state. Appends lock it, '
  'which serializes the writers of one stream.';
COMMENT ON TABLE logbook.log_head IS
  'One row: the last published position and ticket and the last recorded_at. Writers insert in '
  'parallel and move it in ticket order (logbook.publish); its NOTIFY wakes subscribers.';
COMMENT ON TABLE logbook.position_gaps IS
  'Positions a writer took and never used (it rolled back); append-only.';
COMMENT ON TABLE logbook.snapshots IS
  'Client-computed states of streams as of a version; logbookd keeps the newest few per stream.';
COMMENT ON TABLE logbook.schema_migrations IS
  'The numbered migration files applied, with the SHA-256 of each.';
COMMENT ON TABLE logbook.schema_definitions IS
  'The files of migrations/functions and migrations/views applied, with the SHA-256 of each.';
