-- Snapshot schema versions take the whole unsigned 32-bit range, as event
-- schema versions do: the column was an integer, so 2^31 and above were
-- refused. Rewrites logbook.snapshots and its primary key under an
-- exclusive lock; the table holds only the newest few snapshots per stream.
ALTER TABLE logbook.snapshots
  ALTER COLUMN schema_version TYPE bigint,
  ADD CONSTRAINT snapshots_schema_version_range CHECK (schema_version BETWEEN 0 AND 4294967295);
