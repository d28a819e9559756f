-- Deletes stream p_stream_id, which logbookd found at version p_version
-- (load_for_append, in this transaction), and records a StreamDeleted event
-- in $audit ({"deleted_version", "stream_id", "tombstone"}) written by
-- p_written_by, the principal who asked: soft
-- (p_tombstone false: reads start after p_version, appends revive it) or
-- for good (tombstoned: no append is ever accepted again). Returns the audit
-- event's position. logbookd decides expected versions and errors
-- (append_plan.cc CheckDelete); this refuses (SQLSTATE LB002) what no honest
-- decision allows: a system stream, a stream not at p_version, a tombstoned
-- one, or a soft delete of a deleted one. Runs as the owner (SECURITY
-- DEFINER): the application role cannot UPDATE logbook.streams.
CREATE OR REPLACE FUNCTION logbook.delete_stream(p_stream_id text, p_version bigint,
                                                 p_tombstone boolean, p_written_by text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_version bigint;
  v_state   text;
BEGIN
  SELECT s.version, s.state INTO v_version, v_state
    FROM logbook.streams s WHERE s.stream_id = p_stream_id FOR UPDATE;
  IF left(p_stream_id, 1) = '$' OR v_version IS DISTINCT FROM p_version
     OR v_state = 'tombstoned' OR (v_state = 'soft_deleted' AND NOT p_tombstone) THEN
    RAISE EXCEPTION 'logbook: refused to delete stream %: it is % at version %',
      p_stream_id, coalesce(v_state, 'missing'), coalesce(v_version::text, '-')
      USING ERRCODE = 'LB002';
  END IF;
  UPDATE logbook.streams
     SET state = CASE WHEN p_tombstone THEN 'tombstoned' ELSE 'soft_deleted' END,
         first_version = version + 1
   WHERE stream_id = p_stream_id;
  RETURN logbook.append_audit('StreamDeleted',
    format('{"deleted_version":%s,"stream_id":%s,"tombstone":%s}',
           p_version, to_json(p_stream_id), to_json(p_tombstone)),
    p_written_by);
END;
$$;

REVOKE ALL ON FUNCTION logbook.delete_stream(text, bigint, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.delete_stream(text, bigint, boolean, text) TO logbook_app;
