-- Writes a group of appends that logbookd has decided and hashed, at the
-- positions of ticket p_ticket from p_first_position on, in array order;
-- moves the heads of the streams written (p_heads: new version, last
-- event's 1-based place in p_events, new head hash, 32 bytes each in
-- p_head_hashes; a written stream is active again), publishes (which waits
-- for every earlier ticket), and returns each written stream's newest usable
-- snapshot version. The caller holds the streams' locks. Generic plans: the
-- statements probe unique indexes and need no re-planning per call.
CREATE OR REPLACE FUNCTION logbook.write_appends(
  p_ticket bigint, p_first_position bigint, p_events logbook.new_event[],
  p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea)
RETURNS TABLE (stream_id text, snapshot_version bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  v_base bigint := p_first_position - 1;
BEGIN
  -- A lone function scan returns the array in order: no sort needed.
  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type, correlation_id,
                                 causation_id, recorded_at, schema_version,
                                 receipt_previous_hash, receipt_hash, data_digest,
                                 metadata_digest)
  SELECT v_base + e.ord, e.stream_id, e.stream_version, e.event_id, e.event_type, e.data,
         e.metadata, e.content_type, e.correlation_id, e.causation_id, p_recorded_at,
         e.schema_version, e.receipt_previous_hash, e.receipt_hash, e.data_digest,
         e.metadata_digest
    FROM unnest(p_events) WITH ORDINALITY
         AS e(stream_id, stream_version, event_id, event_type, content_type, correlation_id,
              causation_id, schema_version, data, metadata, receipt_previous_hash,
              receipt_hash, data_digest, metadata_digest, ord);

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

  RETURN QUERY
    SELECT x.id, (SELECT max(n.stream_version) FROM logbook.snapshots n, logbook.streams st
                   WHERE n.stream_id = x.id AND st.stream_id = x.id
                     AND n.stream_version >= st.first_version)
      FROM unnest(p_heads) AS x(id);
END;
$$;

GRANT EXECUTE ON FUNCTION
  logbook.write_appends(bigint, bigint, logbook.new_event[], timestamptz, text[], bigint[],
                        bigint[], bytea)
  TO logbook_app;
