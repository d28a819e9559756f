-- A group of appends in one call, decided and hashed by logbookd against
-- the heads it knows of the group's streams (from its earlier writes), with
-- recorded_at from its own clock: locks the streams (lock_streams), checks
-- that each is at the version, head hash and state it assumed (p_expected_*)
-- and that the first event id of each append (p_first_event_ids) is not
-- stored yet, then takes a ticket and writes as append_loaded does, whose
-- rows it returns.
--
-- Writes nothing and returns no rows if a stream differs or a first id is
-- stored (an idempotent retry, or a concurrent writer): logbookd then loads
-- the streams and decides again (load_for_append, append_loaded). Any other
-- stored id fails the INSERT on the unique index; logbookd then runs each
-- append alone, which names the id.
--
-- Runs as the owner (SECURITY DEFINER), as append_loaded does.
CREATE OR REPLACE FUNCTION logbook.append_cached(
  p_events logbook.new_event[], p_first_event_ids uuid[], p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea,
  p_expected_versions bigint[], p_expected_hashes bytea, p_expected_states text[])
RETURNS TABLE (stream_id text, snapshot_version bigint, first_position bigint,
               later_recorded_at_micros bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM logbook.lock_streams(p_heads);
  IF EXISTS (
       SELECT FROM unnest(p_heads, p_expected_versions, p_expected_states)
                   WITH ORDINALITY AS x(id, version, state, ord)
         LEFT JOIN LATERAL (SELECT s.version, s.state, s.head_hash FROM logbook.streams s
                             WHERE s.stream_id = x.id OFFSET 0) s ON true
        WHERE s.version IS NULL OR s.version <> x.version OR s.state <> x.state
              OR s.head_hash IS DISTINCT FROM
                 substring(p_expected_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32))
     OR EXISTS (SELECT FROM unnest(p_first_event_ids) AS x(id)
                  CROSS JOIN LATERAL (SELECT FROM logbook.event_log e
                                       WHERE e.event_id = x.id OFFSET 0) stored) THEN
    RETURN;
  END IF;
  RETURN QUERY SELECT * FROM logbook.append_loaded(p_events, p_recorded_at, p_heads,
                                                   p_head_versions, p_head_last_events,
                                                   p_head_hashes);
END;
$$;

REVOKE ALL ON FUNCTION
  logbook.append_cached(logbook.new_event[], uuid[], timestamptz, text[], bigint[], bigint[],
                        bytea, bigint[], bytea, text[])
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  logbook.append_cached(logbook.new_event[], uuid[], timestamptz, text[], bigint[], bigint[],
                        bytea, bigint[], bytea, text[])
  TO logbook_app;
