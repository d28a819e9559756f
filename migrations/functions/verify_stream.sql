-- Verifies one stream's receipt chain in plain SQL, making the same checks as
-- logbookd's Verify (store/src/verifier.cc). Returns one row: ok, the events
-- checked, the recomputed head hash, and for a broken stream the first
-- broken event (by version), a reason (data_changed, metadata_changed,
-- event_missing, event_inserted, receipt_changed, versions_out_of_sequence,
-- event_changed, redaction_not_audited; docs/receipts.md) and a detail.
-- Reads only; runs as the owner (SECURITY DEFINER), which may use
-- receipt_hash. The stream is the one of the tenant logbook.tenant names
-- (current_tenant()). Usage: SET logbook.tenant = 'default';
-- SELECT * FROM logbook.verify_stream('order-42');
CREATE OR REPLACE FUNCTION logbook.verify_stream(p_stream_id text)
RETURNS TABLE (ok boolean, events_checked bigint, head_hash bytea, stream_version bigint,
               global_position bigint, reason text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  zero       constant bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
  s          record;
  e          record;
  v_head     bigint;
  v_prev     bytea := zero;
  v_next     bigint := 0;
  v_last_pos bigint := 0;
  v_count    bigint := 0;
  v_h        bytea;
  v_confirm  bytea;
  v_exists   boolean;
BEGIN
  PERFORM logbook.current_tenant();  -- Names one, or raises.
  SELECT * INTO s FROM logbook.streams st WHERE st.stream_id = p_stream_id;
  v_exists := FOUND;
  SELECT h.last_position INTO v_head FROM logbook.log_head h;
  FOR e IN
    SELECT ev.global_position AS pos, ev.stream_id AS sid, ev.stream_version AS ver, ev.event_id,
           ev.event_type, ev.content_type, ev.recorded_at, ev.schema_version, ev.correlation_id,
           ev.causation_id, ev.data, ev.metadata, ev.redaction_reason,
           ev.receipt_previous_hash AS previous_hash, ev.receipt_hash AS hash, ev.data_digest,
           ev.metadata_digest, ev.tenant, ev.written_by
      FROM logbook.event_log ev
     WHERE ev.stream_id = p_stream_id
     ORDER BY ev.stream_version
  LOOP
    IF NOT v_exists OR e.ver > s.version OR e.pos > v_head THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'event_inserted'::text,
        'the event is beyond the head the stream and the log recorded'::text;
      RETURN;
    END IF;
    IF e.ver > v_next THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, v_next,
        logbook.unused_position(v_last_pos, e.pos, e.ver - v_next), 'event_missing'::text,
        format('version %s is gone', v_next);
      RETURN;
    END IF;
    IF e.pos <= v_last_pos THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos,
        'versions_out_of_sequence'::text,
        format('position %s does not follow the previous version''s %s', e.pos, v_last_pos);
      RETURN;
    END IF;
    IF e.previous_hash IS NULL OR e.hash IS NULL OR e.data_digest IS NULL
       OR e.metadata_digest IS NULL THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'event_inserted'::text,
        'the event has no receipt'::text;
      RETURN;
    END IF;
    v_h := logbook.receipt_hash(e.previous_hash, e.sid, e.ver, e.event_id, e.event_type,
                                e.content_type, e.recorded_at, e.schema_version,
                                e.correlation_id, e.causation_id, e.data_digest,
                                e.metadata_digest, e.tenant, e.written_by);
    IF v_h IS DISTINCT FROM e.hash THEN
      -- Which side changed? The receipt, if its digests were edited or the
      -- next link does not confirm its hash; otherwise the event.
      -- (The next link by position: a version may be what was edited. The
      -- OFFSET 0 keeps the plan to the stream's rows, not the log's tail.)
      SELECT en.receipt_previous_hash INTO v_confirm
        FROM (SELECT * FROM logbook.event_log x
               WHERE x.stream_id = p_stream_id AND x.global_position > e.pos OFFSET 0) en
       ORDER BY en.global_position LIMIT 1;
      IF NOT FOUND THEN v_confirm := s.head_hash; END IF;
      IF logbook.receipt_hash(e.previous_hash, e.sid, e.ver, e.event_id, e.event_type,
                              e.content_type, e.recorded_at, e.schema_version, e.correlation_id,
                              e.causation_id, sha256(e.data), sha256(e.metadata), e.tenant,
                              e.written_by) = e.hash
         OR v_confirm IS DISTINCT FROM e.hash THEN
        RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'receipt_changed'::text,
          'the receipt does not match its own contents'::text;
      ELSE
        RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'event_changed'::text,
          'a hashed field of the event no longer matches its receipt'::text;
      END IF;
      RETURN;
    END IF;
    IF e.previous_hash IS DISTINCT FROM v_prev AND e.ver = 0 THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'receipt_changed'::text,
        'the first receipt does not start the chain'::text;
      RETURN;
    END IF;
    IF e.previous_hash IS DISTINCT FROM v_prev THEN
      -- This receipt is intact, so the one before it was rewritten.
      RETURN QUERY SELECT false, v_count - 1, NULL::bytea, e.ver - 1, v_last_pos,
        'receipt_changed'::text, 'the next receipt does not link to it'::text;
      RETURN;
    END IF;
    IF e.redaction_reason IS NULL THEN
      IF sha256(e.data) <> e.data_digest THEN
        RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'data_changed'::text,
          'the data does not match its receipt''s digest'::text;
        RETURN;
      END IF;
      IF sha256(e.metadata) <> e.metadata_digest THEN
        RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'metadata_changed'::text,
          'the metadata does not match its receipt''s digest'::text;
        RETURN;
      END IF;
    ELSIF e.data <> '' OR e.metadata <> '' THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'data_changed'::text,
        'a redacted event has data again'::text;
      RETURN;
    ELSIF NOT EXISTS (
        SELECT FROM logbook.event_log a
         WHERE a.stream_id = '$audit' AND a.event_type = 'EventRedacted'
           AND a.redaction_reason IS NULL
           AND convert_from(a.data, 'UTF8')::jsonb ->> 'global_position' = e.pos::text) THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos,
        'redaction_not_audited'::text, 'no EventRedacted record in $audit'::text;
      RETURN;
    END IF;
    v_prev := e.hash;
    v_next := e.ver + 1;
    v_last_pos := e.pos;
    v_count := v_count + 1;
  END LOOP;
  IF NOT v_exists THEN
    RETURN QUERY SELECT false, v_count, NULL::bytea, NULL::bigint, NULL::bigint,
      'event_missing'::text, 'no such stream'::text;
    RETURN;
  END IF;
  IF s.version >= v_next THEN
    RETURN QUERY SELECT false, v_count, NULL::bytea, v_next,
      logbook.unused_position(v_last_pos, s.last_position + 1, s.version + 1 - v_next),
      'event_missing'::text,
      format('the stream records version %s, the log ends at %s', s.version, v_next - 1);
    RETURN;
  END IF;
  IF s.head_hash IS DISTINCT FROM v_prev THEN
    RETURN QUERY SELECT false, v_count, NULL::bytea, v_next - 1, v_last_pos,
      'receipt_changed'::text, 'the stream''s head hash differs from its last receipt'::text;
    RETURN;
  END IF;
  RETURN QUERY SELECT true, v_count, v_prev, NULL::bigint, NULL::bigint, NULL::text, NULL::text;
END;
$$;

REVOKE ALL ON FUNCTION logbook.verify_stream(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.verify_stream(text) TO logbook_app;
