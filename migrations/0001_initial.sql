-- Logbook schema, version 1: the event log, streams, snapshots, receipts.
--
-- Applied by `logbook migrate up` (each file in its own transaction, under an
-- advisory lock) or by a DBA with psql; see README.md "Migrations".
-- Everything lives in schema `logbook`. The application role `logbook_app`
-- may INSERT and SELECT events but never UPDATE or DELETE them.

CREATE SCHEMA IF NOT EXISTS logbook;

-- Which migration files were applied, with the SHA-256 of each file's bytes.
CREATE TABLE IF NOT EXISTS logbook.schema_migrations (
  version     integer     PRIMARY KEY,
  name        text        NOT NULL,
  checksum    text        NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  applied_by  text        NOT NULL DEFAULT current_user
);

-- One row: the last global position handed out. Every append locks this row
-- first, inside its transaction, so transactions that write events commit one
-- after another and positions become visible strictly in order, without
-- holes (a bare sequence would let position 11 commit before 10).
CREATE TABLE logbook.log_head (
  singleton         boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  last_position     bigint      NOT NULL DEFAULT 0,
  -- recorded_at of the last event; recorded_at never goes backwards.
  last_recorded_at  timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO logbook.log_head DEFAULT VALUES;

CREATE TABLE logbook.streams (
  stream_id      text        PRIMARY KEY,
  -- Version of the stream's last event (the first event has version 0).
  version        bigint      NOT NULL CHECK (version >= 0),
  last_position  bigint      NOT NULL,
  -- Hash of the newest receipt (filled once receipts are written).
  head_hash      bytea,
  state          text        NOT NULL DEFAULT 'active'
                 CHECK (state IN ('active', 'soft_deleted', 'tombstoned')),
  created_at     timestamptz NOT NULL
);

CREATE TABLE logbook.event_log (
  global_position  bigint      PRIMARY KEY CHECK (global_position > 0),
  stream_id        text        NOT NULL,
  stream_version   bigint      NOT NULL CHECK (stream_version >= 0),
  event_id         uuid        NOT NULL,
  event_type       text        NOT NULL,
  data             bytea       NOT NULL,
  metadata         bytea       NOT NULL,
  content_type     text        NOT NULL,
  correlation_id   text,
  causation_id     text,
  recorded_at      timestamptz NOT NULL,
  category         text        GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
  CONSTRAINT event_log_stream_version_key UNIQUE (stream_id, stream_version),
  CONSTRAINT event_log_event_id_key UNIQUE (event_id),
  CONSTRAINT event_log_stream_id_length CHECK (octet_length(stream_id) BETWEEN 1 AND 1024),
  CONSTRAINT event_log_event_type_length CHECK (octet_length(event_type) BETWEEN 1 AND 1024)
);
CREATE INDEX event_log_category_idx ON logbook.event_log (category, global_position);

CREATE TABLE logbook.snapshots (
  stream_id       text        NOT NULL,
  stream_version  bigint      NOT NULL CHECK (stream_version >= 0),
  schema_version  integer     NOT NULL,
  state           bytea       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, schema_version, stream_version)
);

-- One receipt per event: links the event to the one before it in its stream.
CREATE TABLE logbook.receipts (
  global_position  bigint  PRIMARY KEY,
  stream_id        text    NOT NULL,
  stream_version   bigint  NOT NULL,
  previous_hash    bytea   NOT NULL,
  hash             bytea   NOT NULL,
  algorithm        text    NOT NULL,
  UNIQUE (stream_id, stream_version)
);

-- History is append-only: UPDATE, DELETE and TRUNCATE are rejected for
-- everyone, whatever their grants.
CREATE FUNCTION logbook.reject_history_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'logbook: % on %.% is not allowed; history is append-only',
    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER event_log_append_only BEFORE UPDATE OR DELETE ON logbook.event_log
  FOR EACH ROW EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON logbook.event_log
  FOR EACH STATEMENT EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER receipts_append_only BEFORE UPDATE OR DELETE ON logbook.receipts
  FOR EACH ROW EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER receipts_no_truncate BEFORE TRUNCATE ON logbook.receipts
  FOR EACH STATEMENT EXECUTE FUNCTION logbook.reject_history_change();

-- Appends one batch of events to one stream. Never raises for an expected
-- outcome; returns one row whose `outcome` is
--   'ok'              stored; positions and versions returned
--   'duplicate'       every event id is already stored at exactly these
--                     versions of this stream: nothing stored, the original
--                     positions returned (an idempotent retry)
--   'wrong_version'   the expected version did not hold; actual_version is
--                     the stream's version (NULL when it does not exist)
--   'event_id_reused' conflicting_event_id is stored elsewhere, at
--                     conflicting_stream_id / conflicting_version
-- and changes nothing unless the outcome is 'ok'. So several appends can
-- share one transaction, each with its own outcome.
--
-- p_expected: -1 any, -2 no stream, -3 stream exists, >= 0 exact version.
-- Payloads arrive concatenated in p_payload: for each event its data then its
-- metadata, with the byte counts in p_data_sizes and p_metadata_sizes.
CREATE FUNCTION logbook.append_events(
  p_stream_id        text,
  p_expected         bigint,
  p_event_ids        uuid[],
  p_types            text[],
  p_content_types    text[],
  p_correlation_ids  text[],
  p_causation_ids    text[],
  p_payload          bytea,
  p_data_sizes       integer[],
  p_metadata_sizes   integer[])
RETURNS TABLE (
  outcome               text,
  actual_version        bigint,
  first_version         bigint,
  last_version          bigint,
  first_position        bigint,
  last_position         bigint,
  committed_at          timestamptz,
  conflicting_event_id  uuid,
  conflicting_stream_id text,
  conflicting_version   bigint)
LANGUAGE plpgsql AS $$
DECLARE
  n               integer := cardinality(p_event_ids);
  v_current       bigint;
  v_exists        boolean;
  v_found         integer;
  v_dup_ok        boolean;
  v_dup_first     bigint;
  v_first_pos     bigint;
  v_last_pos      bigint;
  v_recorded_at   timestamptz;
  v_first_version bigint;
BEGIN
  -- Serialize writers: see logbook.log_head.
  SELECT h.last_position, h.last_recorded_at INTO v_last_pos, v_recorded_at
    FROM logbook.log_head h FOR UPDATE;

  SELECT s.version INTO v_current FROM logbook.streams s WHERE s.stream_id = p_stream_id;
  v_exists := FOUND;

  -- Idempotency: are any of these event ids stored already?
  SELECT count(*), bool_and(q.same_stream AND q.offset_ = q.min_offset), min(q.stream_version)
    INTO v_found, v_dup_ok, v_dup_first
    FROM (SELECT e.stream_id = p_stream_id AS same_stream, e.stream_version,
                 e.stream_version - r.ord AS offset_,
                 min(e.stream_version - r.ord) OVER () AS min_offset
            FROM unnest(p_event_ids) WITH ORDINALITY AS r(id, ord)
            JOIN logbook.event_log e ON e.event_id = r.id) q;
  IF v_found > 0 THEN
    IF v_found = n AND v_dup_ok
       AND (p_expected = -1 OR p_expected = -3
            OR (p_expected = -2 AND v_dup_first = 0)
            OR (p_expected >= 0 AND v_dup_first = p_expected + 1)) THEN
      RETURN QUERY
        SELECT 'duplicate'::text, v_current, min(e.stream_version), max(e.stream_version),
               min(e.global_position), max(e.global_position), min(e.recorded_at), NULL::uuid, NULL::text, NULL::bigint
          FROM logbook.event_log e WHERE e.event_id = ANY (p_event_ids);
      RETURN;
    END IF;
    RETURN QUERY
      SELECT 'event_id_reused'::text, v_current, NULL::bigint, NULL::bigint,
             NULL::bigint, NULL::bigint, NULL::timestamptz, r.id, e.stream_id, e.stream_version
        FROM unnest(p_event_ids) WITH ORDINALITY AS r(id, ord)
        JOIN logbook.event_log e ON e.event_id = r.id
       ORDER BY r.ord LIMIT 1;
    RETURN;
  END IF;

  IF (p_expected = -2 AND v_exists)
     OR (p_expected = -3 AND NOT v_exists)
     OR (p_expected >= 0 AND (NOT v_exists OR v_current <> p_expected)) THEN
    RETURN QUERY SELECT 'wrong_version'::text, v_current, NULL::bigint, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::uuid, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  v_first_version := COALESCE(v_current + 1, 0);
  v_first_pos := v_last_pos + 1;
  v_last_pos := v_last_pos + n;
  v_recorded_at := greatest(clock_timestamp(), v_recorded_at);
  UPDATE logbook.log_head
     SET last_position = v_last_pos, last_recorded_at = v_recorded_at;

  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type,
                                 correlation_id, causation_id, recorded_at)
  SELECT v_first_pos + t.ord - 1, p_stream_id, v_first_version + t.ord - 1, t.id, t.typ,
         substring(p_payload FROM t.data_end - t.dsize - t.msize + 1 FOR t.dsize),
         substring(p_payload FROM t.data_end - t.msize + 1 FOR t.msize),
         t.ctype, NULLIF(t.corr, ''), NULLIF(t.caus, ''), v_recorded_at
    FROM (SELECT u.*, (sum(u.dsize + u.msize) OVER (ORDER BY u.ord))::integer AS data_end
            FROM unnest(p_event_ids, p_types, p_content_types, p_correlation_ids,
                        p_causation_ids, p_data_sizes, p_metadata_sizes)
                 WITH ORDINALITY AS u(id, typ, ctype, corr, caus, dsize, msize, ord)) t
   ORDER BY t.ord;

  INSERT INTO logbook.streams AS s (stream_id, version, last_position, created_at)
  VALUES (p_stream_id, v_first_version + n - 1, v_last_pos, v_recorded_at)
  ON CONFLICT (stream_id) DO UPDATE
    SET version = EXCLUDED.version, last_position = EXCLUDED.last_position;

  RETURN QUERY SELECT 'ok'::text, v_current, v_first_version, v_first_version + n - 1,
                      v_first_pos, v_last_pos, v_recorded_at, NULL::uuid, NULL::text, NULL::bigint;
END;
$$;

-- The application role: reads and appends, nothing else. Created here when
-- missing (which needs CREATEROLE); a DBA may create it beforehand and grant
-- it to the login role that logbookd uses.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'logbook_app') THEN
    CREATE ROLE logbook_app NOLOGIN;
  END IF;
END;
$$;
GRANT USAGE ON SCHEMA logbook TO logbook_app;
GRANT SELECT ON logbook.schema_migrations TO logbook_app;
GRANT SELECT, UPDATE ON logbook.log_head TO logbook_app;
GRANT SELECT, INSERT ON logbook.event_log TO logbook_app;
GRANT SELECT, INSERT ON logbook.receipts TO logbook_app;
GRANT SELECT, INSERT, UPDATE ON logbook.streams TO logbook_app;
GRANT SELECT, INSERT, DELETE ON logbook.snapshots TO logbook_app;
GRANT EXECUTE ON FUNCTION logbook.append_events(text, bigint, uuid[], text[], text[], text[],
                                                text[], bytea, integer[], integer[])
  TO logbook_app;
