-- Writes a group of appends that logbookd has decided and hashed, at the
-- positions of ticket p_ticket from p_first_position on, in array order;
-- moves the heads of the streams written (p_heads: new version, last
-- event's 1-based place in p_events, new head hash, 32 bytes each in
-- p_head_hashes; a written stream is active again), publishes (which waits
-- for every earlier ticket), and returns each written stream's newest usable
-- snapshot version. Generic plans: the statements probe unique indexes and
-- need no re-planning per call.
--
-- Refuses (SQLSTATE LB002), writing nothing, a group whose heads do not
-- move as an honest logbookd moves them: a stream named twice or
-- tombstoned, an event of a stream that is not among the heads or whose
-- version is not one of those after its stream's head, or a new head that
-- is not its stream's last event (version, place and receipt). The events
-- are checked as they are inserted, in the same pass. With the unique (stream_id,
-- stream_version) index that makes each stream's events exactly the
-- versions after its head. It does not hash receipts again (about 15 µs an
-- event in SQL, three times what the rest of an append costs PostgreSQL):
-- a receipt or digest that is wrong is what verification names at that
-- very event; what verification could not notice (a revived tombstone, a
-- head moved past or behind its events) is refused here. Locks the
-- streams' rows (the caller normally holds them already).
CREATE OR REPLACE FUNCTION logbook.write_appends(
  p_ticket bigint, p_first_position bigint, p_events logbook.new_event[],
  p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea)
RETURNS TABLE (stream_id text, snapshot_version bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_base     bigint := p_first_position - 1;
  v_lows     bigint[];  -- Each head's first new version.
  v_hashes   bytea[];   -- Each head's new hash.
  v_events   bigint;
  v_distinct bigint;
  v_problem  text;
  v_written  bigint;
BEGIN
  SELECT array_agg(y.low ORDER BY y.ord), array_agg(y.hash ORDER BY y.ord),
         sum(y.version - y.low + 1), count(DISTINCT y.id),
         (array_agg(y.problem ORDER BY y.ord) FILTER (WHERE y.problem IS NOT NULL))[1]
    INTO v_lows, v_hashes, v_events, v_distinct, v_problem
    FROM (SELECT x.ord, x.id, x.version, coalesce(t.version + 1, 0) AS low,
                 substring(p_head_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32) AS hash,
                 CASE WHEN t.state = 'tombstoned' THEN format('stream %s is tombstoned', x.id)
                      WHEN x.version < coalesce(t.version + 1, 0)
                        THEN format('stream %s is at version %s, beyond its new head %s', x.id,
                                    t.version, x.version)
                 END AS problem
            FROM unnest(p_heads, p_head_versions) WITH ORDINALITY AS x(id, version, ord)
            LEFT JOIN LATERAL (SELECT s.version, s.state FROM logbook.streams s
                                WHERE s.stream_id = x.id FOR UPDATE) t ON true) y;
  IF v_problem IS NULL AND v_distinct IS DISTINCT FROM cardinality(p_heads) THEN
    v_problem := 'a stream is named twice among the new heads';
  ELSIF v_problem IS NULL AND v_events IS DISTINCT FROM cardinality(p_events) THEN
    v_problem := format('the new heads take %s events, the group has %s', v_events,
                        cardinality(p_events));
  END IF;
  IF v_problem IS NOT NULL THEN
    RAISE EXCEPTION 'logbook: refused to append: %', v_problem USING ERRCODE = 'LB002';
  END IF;

  -- A lone function scan returns the array in order: no sort needed. Only
  -- events in their head's new versions are written; the count says if
  -- one was not.
  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type, correlation_id,
                                 causation_id, recorded_at, schema_version,
                                 receipt_previous_hash, receipt_hash, data_digest,
                                 metadata_digest, tenant, written_by, traceparent)
  SELECT v_base + e.ord, e.stream_id, e.stream_version, e.event_id, e.event_type, e.data,
         e.metadata, e.content_type, e.correlation_id, e.causation_id, p_recorded_at,
         e.schema_version, e.receipt_previous_hash, e.receipt_hash, e.data_digest,
         e.metadata_digest, e.tenant, e.written_by, e.traceparent
    FROM unnest(p_events) WITH ORDINALITY
         AS e(stream_id, stream_version, event_id, event_type, content_type, correlation_id,
              causation_id, schema_version, data, metadata, receipt_previous_hash,
              receipt_hash, data_digest, metadata_digest, tenant, written_by, traceparent, ord)
    JOIN unnest(p_heads, v_lows, p_head_versions, p_head_last_events, v_hashes)
         AS h(id, low, high, last_event, hash)
      ON h.id = e.stream_id AND e.stream_version BETWEEN h.low AND h.high
         AND (e.stream_version < h.high OR (e.ord = h.last_event AND e.receipt_hash = h.hash));
  GET DIAGNOSTICS v_written = ROW_COUNT;
  IF v_written <> cardinality(p_events) THEN
    RAISE EXCEPTION 'logbook: refused to append: % of the group''s % events are not new '
                    'versions of their streams, or not the new heads they are said to be',
                    cardinality(p_events) - v_written, cardinality(p_events)
      USING ERRCODE = 'LB002';
  END IF;

  INSERT INTO logbook.streams AS s (stream_id, version, last_position, head_hash, created_at)
  SELECT x.id, x.version, v_base + x.last_event,
         substring(p_head_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32), p_recorded_at
    FROM unnest(p_heads, p_head_versions, p_head_last_events)
         WITH ORDINALITY AS x(id, version, last_event, ord)
  ON CONFLICT ON CONSTRAINT streams_pkey DO UPDATE
    SET version = EXCLUDED.version, last_position = EXCLUDED.last_position,
        head_hash = EXCLUDED.head_hash, state = 'active';

  PERFORM logbook.publish(p_ticket, p_first_position,
                          v_base + cardinality(p_events), p_recorded_at);

  -- A tenant's first stream records the tenant (current_tenant(); the
  -- policies of migrations/0021 made every row above the session's tenant's).
  -- After publish, when every earlier ticket's transaction has ended: before
  -- it, a tenant's first two appends deadlocked, the earlier waiting for the
  -- later's insert here and the later waiting for the earlier's turn.
  INSERT INTO logbook.tenants (tenant)
  SELECT logbook.current_tenant()
   WHERE NOT EXISTS (SELECT FROM logbook.tenants t WHERE t.tenant = logbook.current_tenant())
  ON CONFLICT DO NOTHING;

  RETURN QUERY
    SELECT x.id, (SELECT max(n.stream_version) FROM logbook.snapshots n, logbook.streams st
                   WHERE n.stream_id = x.id AND st.stream_id = x.id
                     AND n.stream_version >= st.first_version)
      FROM unnest(p_heads) AS x(id);
END;
$$;

-- Internal: called by append_loaded and append_audit, as the owner.
REVOKE ALL ON FUNCTION
  logbook.write_appends(bigint, bigint, logbook.new_event[], timestamptz, text[], bigint[],
                        bigint[], bytea)
  FROM PUBLIC, logbook_app;
