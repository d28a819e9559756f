-- Appends a group that logbookd decided against the streams load_for_append
-- loaded and locked in this transaction, and hashed with recorded_at
-- p_recorded_at: refuses (SQLSTATE LB002) a group that writes a system
-- stream ($audit is written only by the functions that audit), takes a
-- ticket for its events at that time (take_ticket) and writes and
-- publishes them as write_appends, which checks the rest (p_heads: the streams
-- written, their new versions, their last events' places in p_events and
-- their new head hashes). Returns, for each written stream, its newest
-- usable snapshot version, and the group's first position.
--
-- Writes nothing and returns one row with only later_recorded_at_micros
-- set, the last ticket's recorded_at, when p_recorded_at is earlier than
-- that (a concurrent writer took a ticket with a later clock): logbookd
-- hashes the group again at that time and calls once more. append_cached
-- ends here too, after checking what it assumed.
--
-- Runs as the owner (SECURITY DEFINER): the application role has no INSERT
-- on the tables it writes.
CREATE OR REPLACE FUNCTION logbook.append_loaded(
  p_events logbook.new_event[], p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea)
RETURNS TABLE (stream_id text, snapshot_version bigint, first_position bigint,
               later_recorded_at_micros bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_ticket record;
BEGIN
  IF EXISTS (SELECT FROM unnest(p_heads) AS x(id) WHERE left(x.id, 1) = '$') THEN
    RAISE EXCEPTION 'logbook: refused to append: % is a system stream',
      (SELECT x.id FROM unnest(p_heads) AS x(id) WHERE left(x.id, 1) = '$' LIMIT 1)
      USING ERRCODE = 'LB002';
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

REVOKE ALL ON FUNCTION
  logbook.append_loaded(logbook.new_event[], timestamptz, text[], bigint[], bigint[], bytea)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  logbook.append_loaded(logbook.new_event[], timestamptz, text[], bigint[], bigint[], bytea)
  TO logbook_app;
