-- Verifies every stream and the log's positions in plain SQL, as logbookd's
-- `verify --all` does: positions run from 1 to the head except for recorded
-- gaps, every event's stream is recorded, every stream's versions follow its
-- positions, every chain verifies (verify_stream), every deleted stream's
-- row agrees with its newest StreamDeleted record. Returns one row: ok, the
-- events and streams checked, and the broken event with the lowest position,
-- if any. Reads only; runs as the owner (SECURITY DEFINER), as verify_stream
-- does.
--
-- It verifies one tenant's log, the one logbook.tenant names
-- (current_tenant()). The positions are checked only when that tenant holds
-- the whole log: other tenants' positions are holes it cannot tell from
-- deleted events. Usage: SET logbook.tenant = 'default';
-- SELECT * FROM logbook.verify_all();
CREATE OR REPLACE FUNCTION logbook.verify_all()
RETURNS TABLE (ok boolean, events_checked bigint, streams_checked bigint, stream_id text,
               stream_version bigint, global_position bigint, reason text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tenant  constant text := logbook.current_tenant();
  v_head    bigint;
  v_events  bigint := 0;
  v_streams bigint := 0;
  v_missing bigint;
  -- The broken event with the lowest position so far (b_pos NULL sorts last).
  b_found   boolean := false;
  b_stream  text;
  b_version bigint;
  b_pos     bigint;
  b_reason  text;
  b_detail  text;
  r         record;
  st        record;
  h         record;
  v_deleted jsonb;  -- Each deleted stream's newest StreamDeleted record.
  d         jsonb;
BEGIN
  SELECT lh.last_position INTO v_head FROM logbook.log_head lh;
  -- Positions: a hole is a deleted event, except for a recorded gap; an
  -- event inside a recorded gap was inserted.
  IF NOT EXISTS (SELECT FROM logbook.tenants t WHERE t.tenant <> v_tenant) THEN
    SELECT q.pos, q.next, g.last_position AS gap_last INTO h FROM (
      SELECT ev.global_position AS pos,
             lead(ev.global_position) OVER (ORDER BY ev.global_position) AS next
        FROM logbook.event_log ev
       UNION ALL SELECT 0, min(ev.global_position) FROM logbook.event_log ev) q
      LEFT JOIN logbook.position_gaps g ON g.first_position = q.pos + 1
     WHERE q.pos < v_head AND coalesce(q.next, v_head + 1) <> coalesce(g.last_position, q.pos) + 1
     ORDER BY q.pos LIMIT 1;
    IF FOUND AND h.gap_last IS NOT NULL AND h.next <= h.gap_last THEN
      b_found := true;
      b_pos := h.next;
      b_reason := 'event_inserted';
      b_detail := 'the event is at a position no writer used (a recorded gap)';
      SELECT ev.stream_id, ev.stream_version INTO b_stream, b_version FROM logbook.event_log ev
       WHERE ev.global_position = h.next;
    ELSIF FOUND THEN
      v_missing := coalesce(h.gap_last, h.pos) + 1;
      b_found := true;
      b_pos := v_missing;
      b_reason := 'event_missing';
      b_detail := format('no event at position %s', v_missing);
      SELECT m.stream_id, m.stream_version INTO b_stream, b_version
        FROM logbook.missing_event_at(v_missing) m;
    END IF;
  END IF;
  -- An event beyond the head, or of a stream nobody recorded, was inserted.
  -- A version at a lower position than the version before it: the stream's
  -- versions do not follow its positions; verify_stream, walking by version,
  -- names the later event, this names the lower position, as logbookd's
  -- verify --all, walking by position, does. The lower of the two first
  -- cases counts (an insertion, at the same position).
  SELECT c.* INTO st FROM (
      (SELECT ev.stream_id, ev.stream_version, ev.global_position, 0 AS rank,
              'event_inserted'::text AS reason,
              'the event is beyond the head the stream and the log recorded'::text AS detail
         FROM logbook.event_log ev
        WHERE ev.global_position > v_head
           OR NOT EXISTS (SELECT FROM logbook.streams s WHERE s.stream_id = ev.stream_id)
        ORDER BY ev.global_position LIMIT 1)
      UNION ALL
      (SELECT ev.stream_id, ev.stream_version, ev.global_position, 1,
              'versions_out_of_sequence',
              format('version %s at position %s where version %s was due', ev.stream_version,
                     ev.global_position, ev.stream_version - 1)
         FROM logbook.event_log ev
         JOIN logbook.event_log pv ON pv.stream_id = ev.stream_id
                                  AND pv.stream_version = ev.stream_version - 1
        WHERE pv.global_position > ev.global_position
        ORDER BY ev.global_position LIMIT 1)) c
   ORDER BY c.global_position, c.rank LIMIT 1;
  IF FOUND AND (NOT b_found OR st.global_position < b_pos) THEN
    b_found := true;
    b_stream := st.stream_id;
    b_version := st.stream_version;
    b_pos := st.global_position;
    b_reason := st.reason;
    b_detail := st.detail;
  END IF;
  SELECT coalesce(jsonb_object_agg(x.stream_id, x.record), '{}') INTO v_deleted
    FROM (SELECT DISTINCT ON (j->>'stream_id') j->>'stream_id' AS stream_id,
                 j || jsonb_build_object('position', ev.global_position) AS record
            FROM logbook.event_log ev
           CROSS JOIN LATERAL (SELECT convert_from(ev.data, 'UTF8')::jsonb AS j) p
           WHERE ev.stream_id = '$audit' AND ev.event_type = 'StreamDeleted'
           ORDER BY j->>'stream_id', ev.stream_version DESC) x;
  FOR st IN SELECT s.stream_id, s.state, s.version, s.first_version FROM logbook.streams s
             ORDER BY s.stream_id LOOP
    SELECT * INTO r FROM logbook.verify_stream(st.stream_id);
    v_streams := v_streams + 1;
    v_events := v_events + r.events_checked;
    IF NOT r.ok AND (NOT b_found
                     OR coalesce(r.global_position, v_head + 1) < coalesce(b_pos, v_head + 2)) THEN
      b_found := true;
      b_stream := st.stream_id;
      b_version := r.stream_version;
      b_pos := r.global_position;
      b_reason := r.reason;
      b_detail := r.detail;
    END IF;
    -- The row must agree with the stream's newest StreamDeleted record: a
    -- tombstone stays tombstoned at its version; after a soft delete reads
    -- start past it, and the stream is still deleted at it or was written
    -- again since (as logbookd's verify --all checks).
    d := v_deleted -> st.stream_id;
    IF NOT b_found AND r.ok AND d IS NOT NULL AND NOT (
         CASE WHEN (d->>'tombstone')::boolean
              THEN st.state = 'tombstoned' AND st.version = (d->>'deleted_version')::bigint
              ELSE st.first_version > (d->>'deleted_version')::bigint
                   AND ((st.state = 'soft_deleted'
                         AND st.version = (d->>'deleted_version')::bigint)
                        OR (st.state = 'active'
                            AND st.version > (d->>'deleted_version')::bigint)) END) THEN
      b_found := true;
      b_stream := st.stream_id;
      b_version := (d->>'deleted_version')::bigint;
      b_pos := NULL;
      b_reason := 'stream_state_changed';
      b_detail := format('its StreamDeleted record at position %s deleted it %sat version %s, '
                         'but its row says %s at version %s reading from version %s',
                         d->>'position',
                         CASE WHEN (d->>'tombstone')::boolean THEN 'for good ' ELSE '' END,
                         d->>'deleted_version', st.state, st.version, st.first_version);
    END IF;
  END LOOP;
  RETURN QUERY SELECT NOT b_found, v_events, v_streams, b_stream, b_version, b_pos, b_reason,
                      b_detail;
END;
$$;

REVOKE ALL ON FUNCTION logbook.verify_all() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.verify_all() TO logbook_app;
