-- Saves a snapshot of stream p_stream_id at p_stream_version (replacing one
-- at the same version and schema version), with the stream's receipt hash
-- at that version (p_head_hash, which must be it), the state's SHA-256
-- (computed here) and logbookd's signature (p_key_id, p_signature; NULL
-- without a signing key), then keeps the stream's newest p_keep by version,
-- whatever their schema versions. Returns one row: the outcome ('saved', or
-- 'no_stream', 'not_active', 'beyond_head' or 'head_mismatch', which change
-- nothing), the stream's version and state, and the snapshot's created_at
-- in microseconds. Runs as the owner (SECURITY DEFINER): the
-- application role cannot write logbook.snapshots directly, so a snapshot
-- is always of a live stream at a version it has.
CREATE OR REPLACE FUNCTION logbook.save_snapshot(p_stream_id text, p_stream_version bigint,
                                                 p_schema_version bigint, p_state bytea,
                                                 p_keep integer, p_head_hash bytea,
                                                 p_key_id bytea, p_signature bytea)
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
  IF p_head_hash IS DISTINCT FROM (SELECT e.receipt_hash FROM logbook.event_log e
                                    WHERE e.stream_id = p_stream_id
                                      AND e.stream_version = p_stream_version) THEN
    RETURN QUERY SELECT 'head_mismatch'::text, v_version, v_state, NULL::bigint;
    RETURN;
  END IF;
  INSERT INTO logbook.snapshots AS n (stream_id, stream_version, schema_version, state,
                                      head_hash, state_digest, key_id, signature)
  VALUES (p_stream_id, p_stream_version, p_schema_version, p_state, p_head_hash,
          sha256(p_state), p_key_id, p_signature)
  ON CONFLICT ON CONSTRAINT snapshots_pkey  -- (stream_id, schema_version, stream_version)
  DO UPDATE SET state = EXCLUDED.state, head_hash = EXCLUDED.head_hash,
                state_digest = EXCLUDED.state_digest, key_id = EXCLUDED.key_id,
                signature = EXCLUDED.signature, created_at = now()
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

REVOKE ALL ON FUNCTION
  logbook.save_snapshot(text, bigint, bigint, bytea, integer, bytea, bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  logbook.save_snapshot(text, bigint, bigint, bytea, integer, bytea, bytea, bytea)
  TO logbook_app;
