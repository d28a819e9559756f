-- Concurrent appends: writers insert in parallel and commit in position order.
--
-- Until now every append transaction locked logbook.log_head first and held
-- it to its commit, so one backend inserted events at a time. From here on
-- an append transaction
--   1. locks the rows of the streams it writes (logbook.load_for_append),
--      which serializes the writers of one stream and makes its expected
--      version check exact;
--   2. takes a ticket with a range of positions for exactly the events it
--      accepted (logbook.take_ticket); tickets and ranges are handed out in
--      the same order;
--   3. inserts its events, receipts and stream heads, while other writers do
--      the same;
--   4. publishes (logbook.publish, called by logbook.write_appends): waits
--      until every transaction with an earlier ticket has ended, moves the
--      log head, and commits.
-- So transactions that write events still become visible in position order:
-- once a reader has been given position P, no lower position appears later.
-- When logbookd already knows the heads of a group's streams it does all of
-- this in one call, logbook.append_cached, which checks what it assumed.
-- Positions are contiguous except where a transaction rolled back after
-- taking its ticket; the next publisher records such a range in
-- logbook.position_gaps, so verification tells an unused position from a
-- deleted event.

ALTER TABLE logbook.log_head
  -- The ticket of the last transaction that published.
  ADD COLUMN last_ticket bigint NOT NULL DEFAULT 0;

CREATE SEQUENCE logbook.append_tickets AS bigint;
-- The last position handed out to a writer (published or not). Only ever
-- moved by setval, which WAL-logs the exact value: after a crash it resumes
-- at the last position handed out before the last commit, where nextval
-- would skip up to 32.
CREATE SEQUENCE logbook.positions AS bigint MINVALUE 0;
SELECT setval('logbook.positions', h.last_position) FROM logbook.log_head h;
-- The recorded_at handed out with the last ticket, in microseconds since
-- 1970 (setval only, like logbook.positions).
CREATE SEQUENCE logbook.recorded_at_micros AS bigint MINVALUE 0;
SELECT setval('logbook.recorded_at_micros',
              coalesce((extract(epoch FROM nullif(h.last_recorded_at, '-infinity'))
                        * 1000000)::bigint, 0))
  FROM logbook.log_head h;

-- Positions a writer took and never used (it rolled back).
CREATE TABLE logbook.position_gaps (
  first_position bigint      PRIMARY KEY,
  last_position  bigint      NOT NULL CHECK (last_position >= first_position),
  recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER position_gaps_append_only BEFORE UPDATE OR DELETE ON logbook.position_gaps
  FOR EACH ROW EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER position_gaps_no_truncate BEFORE TRUNCATE ON logbook.position_gaps
  FOR EACH STATEMENT EXECUTE FUNCTION logbook.reject_history_change();

-- Ticket T holds the transaction-level advisory lock (27746, T mod 2^31)
-- until it ends; 27746 is 'lb'. Handing out tickets is guarded by the
-- session-level advisory lock 7809643502356145524 ('lbticket').

-- Returns once every transaction with a ticket before p_ticket has ended
-- (committed, having published, or rolled back).
CREATE FUNCTION logbook.await_turn(p_ticket bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_next bigint;
BEGIN
  SELECT h.last_ticket + 1 INTO v_next FROM logbook.log_head h;
  WHILE v_next < p_ticket LOOP
    -- Granted once ticket v_next's transaction has ended.
    PERFORM pg_advisory_xact_lock_shared(27746, (v_next % 2147483648)::integer);
    SELECT greatest(v_next + 1, h.last_ticket + 1) INTO v_next FROM logbook.log_head h;
  END LOOP;
END;
$$;

-- Takes the next ticket, the next p_positions positions and the recorded_at
-- of their events, in one step no other writer can interleave with; so
-- tickets, positions and recorded_at all increase together, whichever
-- logbookd instance asks. recorded_at is p_recorded_at, or with NULL the
-- database's clock; never earlier than the last ticket's. Returns a NULL
-- ticket, taking nothing, if p_recorded_at is earlier than that.
CREATE FUNCTION logbook.take_ticket(p_positions integer, p_recorded_at timestamptz,
                                    OUT ticket bigint, OUT first_position bigint,
                                    OUT recorded_at_micros bigint, OUT recorded_at text)
LANGUAGE plpgsql AS $$
DECLARE
  v_last   bigint;
  v_micros bigint;
BEGIN
  IF p_positions < 1 THEN
    RAISE EXCEPTION 'logbook.take_ticket: p_positions must be at least 1, not %', p_positions;
  END IF;
  BEGIN
    PERFORM pg_advisory_lock(7809643502356145524);
    SELECT r.last_value INTO v_last FROM logbook.recorded_at_micros r;
    v_micros := (extract(epoch FROM coalesce(p_recorded_at, clock_timestamp())) * 1000000)::bigint;
    IF p_recorded_at IS NULL THEN
      v_micros := greatest(v_micros, v_last);
    END IF;
    IF v_micros >= v_last THEN
      IF v_micros > v_last THEN
        PERFORM setval('logbook.recorded_at_micros', v_micros);
      END IF;
      ticket := nextval('logbook.append_tickets');
      SELECT p.last_value + 1 INTO first_position FROM logbook.positions p;
      PERFORM setval('logbook.positions', first_position + p_positions - 1);
      PERFORM pg_advisory_xact_lock(27746, (ticket % 2147483648)::integer);
    END IF;
    PERFORM pg_advisory_unlock(7809643502356145524);
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    -- A session-level lock outlives the transaction: never leave it held
    -- (if the error came before it was taken, this only warns).
    PERFORM pg_advisory_unlock(7809643502356145524);
    RAISE;
  END;
  IF ticket IS NOT NULL THEN
    recorded_at_micros := v_micros;
    recorded_at := ('epoch'::timestamptz + v_micros * interval '1 microsecond')::text;
  END IF;
END;
$$;

-- Publishes positions p_first_position..p_last_position of ticket p_ticket:
-- waits for every earlier ticket, records the positions between the head
-- and p_first_position as a gap, and moves the head (whose NOTIFY wakes
-- subscribers at commit). Raises SQLSTATE LB001 if p_recorded_at is before
-- the head's (the clock went back): recorded_at never goes backwards.
CREATE FUNCTION logbook.publish(p_ticket bigint, p_first_position bigint,
                                p_last_position bigint, p_recorded_at timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_last      bigint;
  v_last_time timestamptz;
BEGIN
  PERFORM logbook.await_turn(p_ticket);
  SELECT h.last_position, h.last_recorded_at INTO v_last, v_last_time
    FROM logbook.log_head h FOR UPDATE;
  IF p_recorded_at < v_last_time THEN
    RAISE EXCEPTION 'logbook: recorded_at % is before the log''s last %', p_recorded_at, v_last_time
      USING ERRCODE = 'LB001';
  END IF;
  IF p_first_position > v_last + 1 THEN
    INSERT INTO logbook.position_gaps (first_position, last_position)
    VALUES (v_last + 1, p_first_position - 1);
  END IF;
  UPDATE logbook.log_head
     SET last_position = p_last_position, last_ticket = p_ticket,
         last_recorded_at = p_recorded_at;
END;
$$;

-- The first statement of every append transaction of logbookd: locks the
-- rows of the existing streams of p_stream_ids, in stream id order so two
-- writers never deadlock, and for each stream that does not exist yet takes
-- the advisory lock (27747, hashtext(stream id)), so a second writer
-- creating the same stream waits for the first and then sees its row
-- instead of failing on a unique key. Then returns what the appends are
-- decided on:
--   'stream' each existing stream: version, last position, head hash, state,
--            first version, newest usable snapshot version
--   'event'  each already stored id of p_event_ids: where it is stored
CREATE FUNCTION logbook.load_for_append(p_stream_ids text[], p_event_ids uuid[])
RETURNS TABLE (row_kind text, stream_id text, version bigint, last_position bigint,
               recorded_at_micros bigint, head_hash bytea, state text,
               first_version bigint, snapshot_version bigint, event_id text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM FROM (SELECT FROM logbook.streams t WHERE t.stream_id = ANY (p_stream_ids)
                 ORDER BY t.stream_id FOR UPDATE) locked;
  PERFORM pg_advisory_xact_lock(27747, m.key)
     FROM (SELECT DISTINCT hashtext(x.id) AS key FROM unnest(p_stream_ids) AS x(id)
            WHERE NOT EXISTS (SELECT FROM logbook.streams t WHERE t.stream_id = x.id)
            ORDER BY 1) m;
  RETURN QUERY SELECT 'stream'::text, s.stream_id, s.version, s.last_position, NULL::bigint,
    s.head_hash, s.state, s.first_version,
    (SELECT max(n.stream_version) FROM logbook.snapshots n
      WHERE n.stream_id = s.stream_id AND n.stream_version >= s.first_version), NULL::text
    FROM (SELECT * FROM logbook.streams t WHERE t.stream_id = ANY (p_stream_ids)
           ORDER BY t.stream_id FOR UPDATE) s;
  RETURN QUERY SELECT 'event'::text, e.stream_id, e.stream_version, e.global_position,
    (extract(epoch FROM e.recorded_at) * 1000000)::bigint, NULL::bytea, NULL::text,
    NULL::bigint, NULL::bigint, e.event_id::text
    FROM logbook.event_log e WHERE e.event_id = ANY (p_event_ids);
END;
$$;

-- Writes a group of appends that logbookd has decided (under the stream
-- locks of logbook.load_for_append) and hashed, at the positions of ticket
-- p_ticket from p_first_position on, then publishes them. Returns, for each
-- written stream, its newest usable snapshot version.
--
-- Per event (arrays): stream id, version, id, type, content type,
-- correlation and causation ids, schema version, and the sizes of its data
-- and metadata, which follow each other in p_payload; in p_hashes 128 bytes
-- per event: previous hash, hash, data digest, metadata digest. Per written
-- stream: id, new version, its last event's place in the arrays (1-based),
-- new head hash (32 bytes each in p_head_hashes).
CREATE FUNCTION logbook.write_appends(
  p_ticket bigint, p_first_position bigint,
  p_stream_ids text[], p_versions bigint[], p_event_ids uuid[], p_types text[],
  p_content_types text[], p_correlation_ids text[], p_causation_ids text[],
  p_schema_versions bigint[], p_data_sizes integer[], p_metadata_sizes integer[],
  p_payload bytea, p_hashes bytea, p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea)
RETURNS TABLE (stream_id text, snapshot_version bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_base bigint := p_first_position - 1;
BEGIN
  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type, correlation_id,
                                 causation_id, recorded_at, schema_version)
  SELECT v_base + ev.ord, ev.sid, ev.version, ev.id, ev.typ,
         substring(p_payload FROM ev.data_end - ev.dsize - ev.msize + 1 FOR ev.dsize),
         substring(p_payload FROM ev.data_end - ev.msize + 1 FOR ev.msize),
         ev.ctype, NULLIF(ev.corr, ''), NULLIF(ev.caus, ''), p_recorded_at, ev.schema
    FROM (SELECT u.*, (sum(u.dsize + u.msize) OVER (ORDER BY u.ord))::integer AS data_end
            FROM unnest(p_stream_ids, p_versions, p_event_ids, p_types, p_content_types,
                        p_correlation_ids, p_causation_ids, p_schema_versions, p_data_sizes,
                        p_metadata_sizes)
                 WITH ORDINALITY AS u(sid, version, id, typ, ctype, corr, caus, schema, dsize,
                                      msize, ord)) ev
   ORDER BY ev.ord;

  INSERT INTO logbook.receipts (global_position, stream_id, stream_version, previous_hash, hash,
                                algorithm, data_digest, metadata_digest)
  SELECT v_base + u.ord, u.sid, u.version,
         substring(p_hashes FROM u.i * 128 + 1 FOR 32),
         substring(p_hashes FROM u.i * 128 + 33 FOR 32), 'sha256',
         substring(p_hashes FROM u.i * 128 + 65 FOR 32),
         substring(p_hashes FROM u.i * 128 + 97 FOR 32)
    FROM (SELECT x.*, (x.ord - 1)::integer AS i
            FROM unnest(p_stream_ids, p_versions) WITH ORDINALITY AS x(sid, version, ord)) u;

  INSERT INTO logbook.streams AS s (stream_id, version, last_position, head_hash, created_at)
  SELECT x.id, x.version, v_base + x.last_event,
         substring(p_head_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32), p_recorded_at
    FROM unnest(p_heads, p_head_versions, p_head_last_events)
         WITH ORDINALITY AS x(id, version, last_event, ord)
  ON CONFLICT ON CONSTRAINT streams_pkey DO UPDATE
    SET version = EXCLUDED.version, last_position = EXCLUDED.last_position,
        head_hash = EXCLUDED.head_hash, state = 'active';

  PERFORM logbook.publish(p_ticket, p_first_position,
                          v_base + cardinality(p_event_ids), p_recorded_at);

  RETURN QUERY
    SELECT x.id, (SELECT max(n.stream_version) FROM logbook.snapshots n, logbook.streams st
                   WHERE n.stream_id = x.id AND st.stream_id = x.id
                     AND n.stream_version >= st.first_version)
      FROM unnest(p_heads) AS x(id);
END;
$$;

-- A group of appends in one call, when logbookd knows the heads of all its
-- streams (from its earlier writes) and has decided and hashed the group
-- against them, with recorded_at from its own clock: locks the streams,
-- checks that each is at the version, head hash and state it assumed
-- (p_expected_*) and that no event id is stored yet, takes a ticket for
-- p_recorded_at, and writes and publishes as logbook.write_appends. If
-- anything differs, or p_recorded_at is earlier than the last ticket's, it
-- writes nothing and returns no rows (logbookd then loads the streams and
-- decides again, logbook.load_for_append). Otherwise returns, for each
-- written stream, its newest usable snapshot version, and the group's first
-- position.
CREATE FUNCTION logbook.append_cached(
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
  PERFORM FROM (SELECT FROM logbook.streams t WHERE t.stream_id = ANY (p_heads)
                 ORDER BY t.stream_id FOR UPDATE) locked;
  IF EXISTS (
       SELECT FROM unnest(p_heads, p_expected_versions, p_expected_states)
                   WITH ORDINALITY AS x(id, version, state, ord)
         LEFT JOIN logbook.streams s ON s.stream_id = x.id
        WHERE s.stream_id IS NULL OR s.version <> x.version OR s.state <> x.state
              OR s.head_hash IS DISTINCT FROM
                 substring(p_expected_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32))
     OR EXISTS (SELECT FROM logbook.event_log e WHERE e.event_id = ANY (p_event_ids)) THEN
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

DROP FUNCTION logbook.lock_for_append(text[], uuid[]);
DROP FUNCTION logbook.append_prepared(text[], bigint[], uuid[], text[], text[], text[], text[],
                                      bigint[], integer[], integer[], bytea, bytea, timestamptz,
                                      text[], bigint[], bigint[], bytea, bigint[], bytea, text[]);

-- Verification: a recorded gap is not a deleted event.
CREATE OR REPLACE FUNCTION logbook.verify_all()
RETURNS TABLE (ok boolean, events_checked bigint, streams_checked bigint, stream_id text,
               stream_version bigint, global_position bigint, reason text, detail text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
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
BEGIN
  SELECT lh.last_position INTO v_head FROM logbook.log_head lh;
  -- Positions: a hole is a deleted event, except for a recorded gap; an
  -- event inside a recorded gap was inserted.
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
    SELECT rc.stream_id, rc.stream_version INTO b_stream, b_version FROM logbook.receipts rc
     WHERE rc.global_position = v_missing;
  END IF;
  -- An event beyond the head, or of a stream nobody recorded, was inserted.
  SELECT ev.stream_id, ev.stream_version, ev.global_position INTO st FROM logbook.event_log ev
   WHERE ev.global_position > v_head
      OR NOT EXISTS (SELECT FROM logbook.streams s WHERE s.stream_id = ev.stream_id)
   ORDER BY ev.global_position LIMIT 1;
  IF FOUND AND (NOT b_found OR st.global_position < b_pos) THEN
    b_found := true;
    b_stream := st.stream_id;
    b_version := st.stream_version;
    b_pos := st.global_position;
    b_reason := 'event_inserted';
    b_detail := 'the event is beyond the head the stream and the log recorded';
  END IF;
  FOR st IN SELECT s.stream_id FROM logbook.streams s ORDER BY s.stream_id LOOP
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
  END LOOP;
  RETURN QUERY SELECT NOT b_found, v_events, v_streams, b_stream, b_version, b_pos, b_reason,
                      b_detail;
END;
$$;

GRANT SELECT ON logbook.position_gaps TO logbook_app;
GRANT INSERT ON logbook.position_gaps TO logbook_app;
GRANT SELECT, USAGE, UPDATE ON SEQUENCE logbook.append_tickets, logbook.positions,
  logbook.recorded_at_micros TO logbook_app;
GRANT EXECUTE ON FUNCTION logbook.await_turn(bigint),
                          logbook.take_ticket(integer, timestamptz),
                          logbook.publish(bigint, bigint, bigint, timestamptz),
                          logbook.load_for_append(text[], uuid[]),
                          logbook.write_appends(bigint, bigint, text[], bigint[], uuid[], text[],
                                                text[], text[], text[], bigint[], integer[],
                                                integer[], bytea, bytea, timestamptz, text[],
                                                bigint[], bigint[], bytea),
                          logbook.append_cached(text[], bigint[], uuid[], text[], text[], text[],
                                                text[], bigint[], integer[], integer[], bytea,
                                                bytea, timestamptz, text[], bigint[], bigint[],
                                                bytea, bigint[], bytea, text[])
  TO logbook_app;
