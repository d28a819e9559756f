-- Saves a snapshot of stream p_stream_id at p_stream_version (replacing one
-- at the same version and schema version), then keeps the stream's newest
-- p_keep by version, whatever their schema versions. Returns one row: the
-- outcome ('saved', or 'no_stream', 'not_active' or 'beyond_head', which
-- change nothing), the stream's version and state, and the snapshot's
-- created_at in microseconds. Runs as the owner (SECURITY DEFINER): the
-- application role cannot write logbook.snapshots directly, so a snapshot
-- is always of a live stream at a version it has.
CREATE OR REPLACE FUNCTION logbook.save_snapshot(p_stream_id text, p_stream_version bigint,
                                                 p_schema_version bigint, p_state bytea,
                                                 p_keep integer)
RETURNS TABLE (outcome text, stream_version bigint, stream_state text,
               created_at_micros bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_version bigint;
  v_state   text;
  v_created timestamptz;
BEGIN
  -- FOR SHARE: a deletion waits until the snapshot is saved, or goes first.
  SELECT s.version, s.state INTO v_version, v_state
    FROM logbook.streams s WHERE s.stream_id = p_stream_id FOR SHARE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_stream'::text, NULL::bigint, NULL::text, NULL::bigint;
    RETURN;
  END IF;
  IF v_state <> 'active' OR p_stream_version > v_version THEN
    RETURN QUERY SELECT CASE WHEN v_state <> 'active' THEN 'not_active' ELSE 'beyond_head' END,
                        v_version, v_state, NULL::bigint;
    RETURN;
  END IF;
  INSERT INTO logbook.snapshots AS n (stream_id, stream_version, schema_version, state)
  VALUES (p_stream_id, p_stream_version, p_schema_version, p_state)
  ON CONFLICT ON CONSTRAINT snapshots_pkey  -- (stream_id, schema_version, stream_version)
  DO UPDATE SET state = EXCLUDED.state, created_at = now()
  RETURNING n.created_at INTO v_created;
  DELETE FROM logbook.snapshots d
   WHERE d.stream_id = p_stream_id
     AND (d.stream_version, d.schema_version) IN (
           SELECT k.stream_version, k.schema_version FROM logbook.snapshots k
            WHERE k.stream_id = p_stream_id
            ORDER BY k.stream_version DESC, k.created_at DESC OFFSET p_keep);
  RETURN QUERY SELECT 'saved'::text, v_version, v_state,
                      (extract(epoch FROM v_created) * 1000000)::bigint;
END;
$$;

REVOKE ALL ON FUNCTION logbook.save_snapshot(text, bigint, bigint, bytea, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.save_snapshot(text, bigint, bigint, bytea, integer)
  TO logbook_app;
