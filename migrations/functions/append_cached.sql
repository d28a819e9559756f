-- Appends a group that logbookd has decided and hashed against what it
-- believes its streams are (p_expected_*, per written stream in p_heads:
-- version, head hash and state; a version of -1: the stream must not exist),
-- with recorded_at from logbookd's clock, in one call: locks the streams
-- (lock_streams; a stream expected not to exist by the advisory lock
-- (new_stream_lock_class(), hashtext(stream id)), as load_for_append
-- does), checks them and that the first event id of each append
-- (p_first_event_ids) is not stored yet, takes a ticket for p_recorded_at
-- (take_ticket), and writes and publishes as write_appends. Returns, for
-- each written stream, its newest usable snapshot version, and the group's
-- first position. logbookd calls it on its own when it knows the streams
-- from its earlier writes, and after load_for_append in the same
-- transaction when it does not.
--
-- Writes nothing and returns no rows if a stream differs or a first id is
-- stored (an idempotent retry, or a concurrent writer): logbookd then loads
-- the streams and decides again. Any other stored id fails the INSERT on
-- the unique index; logbookd then runs each append alone, which names the
-- id. Writes nothing and returns one row with only later_recorded_at_micros
-- set, the last ticket's recorded_at, when p_recorded_at is earlier than
-- that (a concurrent writer took a ticket with a later clock): logbookd
-- hashes the group again at that time and calls once more.
CREATE OR REPLACE FUNCTION logbook.append_cached(
  p_events logbook.new_event[], p_first_event_ids uuid[], p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea,
  p_expected_versions bigint[], p_expected_hashes bytea, p_expected_states text[])
RETURNS TABLE (stream_id text, snapshot_version bigint, first_position bigint,
               later_recorded_at_micros bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_ticket record;
BEGIN
  PERFORM logbook.lock_streams(p_heads);
  PERFORM pg_advisory_xact_lock(logbook.new_stream_lock_class(), m.key)
     FROM (SELECT DISTINCT hashtext(x.id) AS key
             FROM unnest(p_heads, p_expected_versions) AS x(id, version)
            WHERE x.version < 0 ORDER BY 1) m;
  IF EXISTS (
       SELECT FROM unnest(p_heads, p_expected_versions, p_expected_states)
                   WITH ORDINALITY AS x(id, version, state, ord)
         LEFT JOIN LATERAL (SELECT s.version, s.state, s.head_hash FROM logbook.streams s
                             WHERE s.stream_id = x.id OFFSET 0) s ON true
        WHERE CASE WHEN x.version < 0 THEN s.version IS NOT NULL
                   ELSE s.version IS NULL OR s.version <> x.version OR s.state <> x.state
                        OR s.head_hash IS DISTINCT FROM
                           substring(p_expected_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32)
              END)
     OR EXISTS (SELECT FROM unnest(p_first_event_ids) AS x(id)
                  CROSS JOIN LATERAL (SELECT FROM logbook.event_log e
                                       WHERE e.event_id = x.id OFFSET 0) stored) THEN
    RETURN;
  END IF;
  SELECT * INTO v_ticket FROM logbook.take_ticket(cardinality(p_events), p_recorded_at);
  IF v_ticket.ticket IS NULL THEN
    RETURN QUERY SELECT NULL::text, NULL::bigint, NULL::bigint, r.last_value
                   FROM logbook.recorded_at_micros r;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT w.stream_id, w.snapshot_version, v_ticket.first_position, NULL::bigint
      FROM logbook.write_appends(v_ticket.ticket, v_ticket.first_position, p_events,
                                 p_recorded_at, p_heads, p_head_versions, p_head_last_events,
                                 p_head_hashes) w;
END;
$$;

GRANT EXECUTE ON FUNCTION
  logbook.append_cached(logbook.new_event[], uuid[], timestamptz, text[], bigint[], bigint[],
                        bytea, bigint[], bytea, text[])
  TO logbook_app;
