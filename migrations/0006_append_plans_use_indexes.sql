-- The append functions look rows up by key in tables that grow with the
-- log. Written as "key = ANY (array)" or as joins, those lookups let the
-- planner choose a sequential scan, and PL/pgSQL keeps the plan it made
-- first for the session: planned while a fresh database's tables are small
-- and not yet analyzed, "event_id = ANY (ids)" (estimated at 10 ids) is
-- cheaper as a scan of the whole table than as ten index probes, and that
-- plan stays until autovacuum first analyzes the table, a minute or more
-- later. Until then every append read the whole log, and appends got slower
-- with every event stored (single appends at half speed within seconds).
--
-- Here each lookup is one key per row of the unnested array, in a LATERAL
-- subquery the planner cannot turn into a join: a probe of the unique index
-- is then the cheapest plan at any table size. Rows are locked and returned
-- as in 0005.

-- Locks the rows of the existing streams among p_stream_ids, in stream id
-- order (so two writers never deadlock), by their primary key.
CREATE FUNCTION logbook.lock_streams(p_stream_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM FROM (SELECT DISTINCT x.id FROM unnest(p_stream_ids) AS x(id) ORDER BY x.id) k
    CROSS JOIN LATERAL (SELECT FROM logbook.streams t WHERE t.stream_id = k.id
                           FOR UPDATE) locked;
END;
$$;

CREATE OR REPLACE FUNCTION logbook.load_for_append(p_stream_ids text[], p_event_ids uuid[])
RETURNS TABLE (row_kind text, stream_id text, version bigint, last_position bigint,
               recorded_at_micros bigint, head_hash bytea, state text,
               first_version bigint, snapshot_version bigint, event_id text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM logbook.lock_streams(p_stream_ids);
  PERFORM pg_advisory_xact_lock(27747, m.key)
     FROM (SELECT DISTINCT hashtext(x.id) AS key
             FROM unnest(p_stream_ids) AS x(id)
             LEFT JOIN LATERAL (SELECT true AS found FROM logbook.streams t
                                 WHERE t.stream_id = x.id OFFSET 0) s ON true
            WHERE s.found IS NULL
            ORDER BY 1) m;
  RETURN QUERY SELECT 'stream'::text, s.stream_id, s.version, s.last_position, NULL::bigint,
    s.head_hash, s.state, s.first_version,
    (SELECT max(n.stream_version) FROM logbook.snapshots n
      WHERE n.stream_id = s.stream_id AND n.stream_version >= s.first_version), NULL::text
    FROM (SELECT DISTINCT x.id FROM unnest(p_stream_ids) AS x(id) ORDER BY x.id) k
    -- FOR UPDATE again: a stream another writer created while this one
    -- waited for its advisory lock is locked here.
    CROSS JOIN LATERAL (SELECT * FROM logbook.streams t WHERE t.stream_id = k.id
                           FOR UPDATE) s;
  RETURN QUERY SELECT 'event'::text, e.stream_id, e.stream_version, e.global_position,
    (extract(epoch FROM e.recorded_at) * 1000000)::bigint, NULL::bytea, NULL::text,
    NULL::bigint, NULL::bigint, e.event_id::text
    FROM (SELECT DISTINCT x.id FROM unnest(p_event_ids) AS x(id)) k
    CROSS JOIN LATERAL (SELECT * FROM logbook.event_log e WHERE e.event_id = k.id OFFSET 0) e;
END;
$$;

CREATE OR REPLACE FUNCTION logbook.append_cached(
  p_stream_ids text[], p_versions bigint[], p_event_ids uuid[], p_types text[],
  p_content_types text[], p_correlation_ids text[], p_causation_ids text[],
  p_schema_versions bigint[], p_data_sizes integer[], p_metadata_sizes integer[],
  p_payload bytea, p_hashes bytea, p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea,
  p_expected_versions bigint[], p_expected_hashes bytea, p_expected_states text[])
RETURNS TABLE (stream_id text, snapshot_version bigint, first_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_ticket record;
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
     OR EXISTS (SELECT FROM unnest(p_event_ids) AS x(id)
                  CROSS JOIN LATERAL (SELECT FROM logbook.event_log e
                                       WHERE e.event_id = x.id OFFSET 0) stored) THEN
    RETURN;
  END IF;
  SELECT * INTO v_ticket FROM logbook.take_ticket(cardinality(p_event_ids), p_recorded_at);
  IF v_ticket.ticket IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT w.stream_id, w.snapshot_version, v_ticket.first_position
      FROM logbook.write_appends(v_ticket.ticket, v_ticket.first_position, p_stream_ids,
                                 p_versions, p_event_ids, p_types, p_content_types,
                                 p_correlation_ids, p_causation_ids, p_schema_versions,
                                 p_data_sizes, p_metadata_sizes, p_payload, p_hashes,
                                 p_recorded_at, p_heads, p_head_versions, p_head_last_events,
                                 p_head_hashes) w;
END;
$$;

GRANT EXECUTE ON FUNCTION logbook.lock_streams(text[]) TO logbook_app;
