-- The first statement of an append transaction whose streams logbookd does
-- not know: locks the rows of the existing streams of p_stream_ids
-- (lock_streams) and, for each stream that does not exist yet, takes the
-- advisory lock (new_stream_lock_class(), hashtext(stream id)), so a second
-- writer creating the same stream waits for the first and then sees its row
-- instead of failing on the primary key. Then returns what the appends are
-- decided on:
--   'stream' each existing stream: version, last position, head hash, state,
--            first version, newest usable snapshot version, and the version
--            of its last event in the log (which a row edited behind
--            logbookd's back contradicts: logbookd then refuses to write)
--   'event'  each already stored id of p_event_ids: where it is stored
-- Every look-up probes a unique index, one key at a time.
--
-- Its result columns changed (last_event_version), which CREATE OR REPLACE
-- cannot do: the old form is dropped first, in the same transaction.
DROP FUNCTION IF EXISTS logbook.load_for_append(text[], uuid[]);
CREATE FUNCTION logbook.load_for_append(p_stream_ids text[], p_event_ids uuid[])
RETURNS TABLE (row_kind text, stream_id text, version bigint, last_position bigint,
               recorded_at_micros bigint, head_hash bytea, state text,
               first_version bigint, snapshot_version bigint, event_id text,
               last_event_version bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM logbook.lock_streams(p_stream_ids);
  PERFORM pg_advisory_xact_lock(logbook.new_stream_lock_class(), m.key)
     FROM (SELECT DISTINCT hashtext(x.id) AS key
             FROM unnest(p_stream_ids) AS x(id)
             LEFT JOIN LATERAL (SELECT true AS found FROM logbook.streams t
                                 WHERE t.stream_id = x.id OFFSET 0) s ON true
            WHERE s.found IS NULL
            ORDER BY 1) m;
  RETURN QUERY SELECT 'stream'::text, s.stream_id, s.version, s.last_position, NULL::bigint,
    s.head_hash, s.state, s.first_version,
    (SELECT max(n.stream_version) FROM logbook.snapshots n
      WHERE n.stream_id = s.stream_id AND n.stream_version >= s.first_version), NULL::text,
    (SELECT l.stream_version FROM logbook.event_log l WHERE l.stream_id = s.stream_id
      ORDER BY l.stream_version DESC LIMIT 1)
    FROM (SELECT DISTINCT x.id FROM unnest(p_stream_ids) AS x(id) ORDER BY x.id) k
    -- FOR UPDATE again: a stream another writer created while this one
    -- waited for its advisory lock is locked here.
    CROSS JOIN LATERAL (SELECT * FROM logbook.streams t WHERE t.stream_id = k.id
                           FOR UPDATE) s;
  RETURN QUERY SELECT 'event'::text, e.stream_id, e.stream_version, e.global_position,
    (extract(epoch FROM e.recorded_at) * 1000000)::bigint, NULL::bytea, NULL::text,
    NULL::bigint, NULL::bigint, e.event_id::text, NULL::bigint
    FROM (SELECT DISTINCT x.id FROM unnest(p_event_ids) AS x(id)) k
    CROSS JOIN LATERAL (SELECT * FROM logbook.event_log e WHERE e.event_id = k.id OFFSET 0) e;
END;
$$;

REVOKE ALL ON FUNCTION logbook.load_for_append(text[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.load_for_append(text[], uuid[]) TO logbook_app;
