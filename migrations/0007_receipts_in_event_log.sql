-- Receipts move into their events' rows.
--
-- A receipt was a second row per event in logbook.receipts, with its own
-- primary key index: one more heap tuple, index insert and WAL records for
-- every event appended (about a fifth of PostgreSQL's time per batched
-- event). Its four hashes are now columns of logbook.event_log, written by
-- the same INSERT, and logbook.receipts is a view of the same shape, so
-- plain-SQL checks that read it keep working. Tamper evidence is unchanged:
-- the chain links each receipt to the one before it, and the stream's head
-- hash closes it; editing a row's hashes is as visible as editing the
-- receipts table was.
--
-- This migration rewrites every row of logbook.event_log (takes an ACCESS
-- EXCLUSIVE lock for as long; run VACUUM logbook.event_log afterwards). It
-- refuses to start if any event and its receipt disagree, since folding
-- would lose the evidence: run SELECT * FROM logbook.verify_all() first.

DO $$
DECLARE
  v_bad record;
BEGIN
  SELECT coalesce(e.global_position, r.global_position) AS pos,
         CASE WHEN r.global_position IS NULL THEN 'has no receipt'
              WHEN e.global_position IS NULL THEN 'is gone, but its receipt is stored'
              WHEN r.algorithm <> 'sha256' THEN 'has a receipt of algorithm ' || r.algorithm
              ELSE 'has a receipt for another stream or version' END AS what
    INTO v_bad
    FROM logbook.event_log e
    FULL JOIN logbook.receipts r ON r.global_position = e.global_position
   WHERE r.global_position IS NULL OR e.global_position IS NULL OR r.algorithm <> 'sha256'
      OR r.stream_id <> e.stream_id OR r.stream_version <> e.stream_version
   ORDER BY 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'logbook 0007: the event at position % %; receipts cannot be moved into '
                    'logbook.event_log without losing that evidence', v_bad.pos, v_bad.what
      USING HINT = 'SELECT * FROM logbook.verify_all() names the first broken event.';
  END IF;
END;
$$;

ALTER TABLE logbook.event_log
  ADD COLUMN receipt_previous_hash bytea,
  ADD COLUMN receipt_hash          bytea,
  ADD COLUMN data_digest           bytea,
  ADD COLUMN metadata_digest       bytea;

ALTER TABLE logbook.event_log DISABLE TRIGGER event_log_guard_update;
UPDATE logbook.event_log e
   SET receipt_previous_hash = r.previous_hash, receipt_hash = r.hash,
       data_digest = r.data_digest, metadata_digest = r.metadata_digest
  FROM logbook.receipts r
 WHERE r.global_position = e.global_position;
ALTER TABLE logbook.event_log ENABLE TRIGGER event_log_guard_update;

ALTER TABLE logbook.event_log
  ALTER COLUMN receipt_previous_hash SET NOT NULL,
  ALTER COLUMN receipt_hash SET NOT NULL,
  ALTER COLUMN data_digest SET NOT NULL,
  ALTER COLUMN metadata_digest SET NOT NULL;

DROP TABLE logbook.receipts;

-- The receipts, one per event, as the table had them. Updating it updates
-- logbook.event_log, whose triggers refuse it; nobody may insert into it.
CREATE VIEW logbook.receipts AS
  SELECT e.global_position, e.stream_id, e.stream_version,
         e.receipt_previous_hash AS previous_hash, e.receipt_hash AS hash,
         'sha256'::text AS algorithm, e.data_digest, e.metadata_digest
    FROM logbook.event_log e;
GRANT SELECT ON logbook.receipts TO logbook_app;

-- Redaction may not touch the receipt either.
CREATE OR REPLACE FUNCTION logbook.guard_event_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('logbook.redacting', true) = 'on'
     AND OLD.redaction_reason IS NULL AND NEW.redaction_reason IS NOT NULL
     AND NEW.data = '' AND NEW.metadata = ''
     AND (NEW.global_position, NEW.stream_id, NEW.stream_version, NEW.event_id, NEW.event_type,
          NEW.content_type, NEW.correlation_id, NEW.causation_id, NEW.recorded_at,
          NEW.schema_version, NEW.receipt_previous_hash, NEW.receipt_hash, NEW.data_digest,
          NEW.metadata_digest)
         IS NOT DISTINCT FROM
         (OLD.global_position, OLD.stream_id, OLD.stream_version, OLD.event_id, OLD.event_type,
          OLD.content_type, OLD.correlation_id, OLD.causation_id, OLD.recorded_at,
          OLD.schema_version, OLD.receipt_previous_hash, OLD.receipt_hash, OLD.data_digest,
          OLD.metadata_digest) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'logbook: UPDATE on logbook.event_log is not allowed; history is append-only '
                  '(redact through logbookd)'
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- As in 0005, with each event's receipt in its own row: p_hashes holds 128
-- bytes per event (previous hash, hash, data digest, metadata digest).
CREATE OR REPLACE FUNCTION logbook.write_appends(
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
                                 causation_id, recorded_at, schema_version,
                                 receipt_previous_hash, receipt_hash, data_digest,
                                 metadata_digest)
  SELECT v_base + ev.ord, ev.sid, ev.version, ev.id, ev.typ,
         substring(p_payload FROM ev.data_end - ev.dsize - ev.msize + 1 FOR ev.dsize),
         substring(p_payload FROM ev.data_end - ev.msize + 1 FOR ev.msize),
         ev.ctype, NULLIF(ev.corr, ''), NULLIF(ev.caus, ''), p_recorded_at, ev.schema,
         substring(p_hashes FROM ev.h + 1 FOR 32), substring(p_hashes FROM ev.h + 33 FOR 32),
         substring(p_hashes FROM ev.h + 65 FOR 32), substring(p_hashes FROM ev.h + 97 FOR 32)
    FROM (SELECT u.*, (sum(u.dsize + u.msize) OVER (ORDER BY u.ord))::integer AS data_end,
                 ((u.ord - 1) * 128)::integer AS h
            FROM unnest(p_stream_ids, p_versions, p_event_ids, p_types, p_content_types,
                        p_correlation_ids, p_causation_ids, p_schema_versions, p_data_sizes,
                        p_metadata_sizes)
                 WITH ORDINALITY AS u(sid, version, id, typ, ctype, corr, caus, schema, dsize,
                                      msize, ord)) ev
   ORDER BY ev.ord;

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

-- A deleted event takes its receipt with it, so verification locates it
-- from what is left: the positions around it and its stream's versions.
-- Where that is ambiguous (several events deleted close together) these
-- return NULL rather than guess.

-- The lowest position after p_after and before p_before that holds no event
-- and lies in no recorded gap, provided exactly p_count positions there are
-- like that: then they are the p_count versions missing between two events
-- of one stream, in version order. NULL otherwise.
CREATE FUNCTION logbook.unused_position(p_after bigint, p_before bigint, p_count bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_unused bigint;
BEGIN
  SELECT (p_before - p_after - 1)
         - (SELECT count(*) FROM logbook.event_log e
             WHERE e.global_position > p_after AND e.global_position < p_before)
         - (SELECT coalesce(sum(least(g.last_position, p_before - 1)
                                - greatest(g.first_position, p_after + 1) + 1), 0)
              FROM logbook.position_gaps g
             WHERE g.last_position > p_after AND g.first_position < p_before)
    INTO v_unused;
  IF v_unused IS DISTINCT FROM p_count OR p_count < 1 THEN
    RETURN NULL;
  END IF;
  -- The first unused position follows an event, a gap, or p_after itself.
  RETURN (
    SELECT min(c.p) FROM (
        SELECT p_after + 1 AS p
        UNION ALL
        SELECT e.global_position + 1 FROM logbook.event_log e
         WHERE e.global_position > p_after AND e.global_position < p_before
        UNION ALL
        SELECT g.last_position + 1 FROM logbook.position_gaps g
         WHERE g.last_position > p_after AND g.last_position < p_before) c
     WHERE c.p < p_before
       AND NOT EXISTS (SELECT FROM logbook.event_log x WHERE x.global_position = c.p)
       AND NOT EXISTS (SELECT FROM (SELECT g.last_position FROM logbook.position_gaps g
                                     WHERE g.first_position <= c.p
                                     ORDER BY g.first_position DESC LIMIT 1) g
                        WHERE g.last_position >= c.p));
END;
$$;

-- The stream and version of the event that was at p_position, which holds
-- none now, when the log shows it unambiguously (see unused_position): the
-- candidates are the stream whose recorded last event was there and the
-- first stream after it that skips a version. NULLs otherwise.
CREATE FUNCTION logbook.missing_event_at(p_position bigint, OUT stream_id text,
                                         OUT stream_version bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  c     record;
  v_ver bigint;
  v_pos bigint;
BEGIN
  FOR c IN
    SELECT s.stream_id AS sid, s.version + 1 AS next_version, s.last_position + 1 AS before_pos
      FROM logbook.streams s WHERE s.last_position = p_position
    UNION ALL
    (SELECT e.stream_id, e.stream_version, e.global_position FROM logbook.event_log e
      WHERE e.global_position > p_position AND e.stream_version > 0
        AND NOT EXISTS (SELECT FROM logbook.event_log x
                         WHERE x.stream_id = e.stream_id
                           AND x.stream_version = e.stream_version - 1)
      ORDER BY e.global_position LIMIT 1)
  LOOP
    -- The stream's last event before the missing versions, if any.
    v_ver := NULL;
    v_pos := NULL;
    SELECT p.stream_version, p.global_position INTO v_ver, v_pos FROM logbook.event_log p
     WHERE p.stream_id = c.sid AND p.stream_version < c.next_version
     ORDER BY p.stream_version DESC LIMIT 1;
    IF logbook.unused_position(coalesce(v_pos, 0), c.before_pos,
                               c.next_version - coalesce(v_ver + 1, 0)) = p_position THEN
      stream_id := c.sid;
      stream_version := coalesce(v_ver + 1, 0);
      RETURN;
    END IF;
  END LOOP;
END;
$$;

-- As in 0004, reading each receipt from its event's row.
CREATE OR REPLACE FUNCTION logbook.verify_stream(p_stream_id text)
RETURNS TABLE (ok boolean, events_checked bigint, head_hash bytea, stream_version bigint,
               global_position bigint, reason text, detail text)
LANGUAGE plpgsql STABLE AS $$
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
  SELECT * INTO s FROM logbook.streams st WHERE st.stream_id = p_stream_id;
  v_exists := FOUND;
  SELECT h.last_position INTO v_head FROM logbook.log_head h;
  FOR e IN
    SELECT ev.global_position AS pos, ev.stream_id AS sid, ev.stream_version AS ver, ev.event_id,
           ev.event_type, ev.content_type, ev.recorded_at, ev.schema_version, ev.correlation_id,
           ev.causation_id, ev.data, ev.metadata, ev.redaction_reason,
           ev.receipt_previous_hash AS previous_hash, ev.receipt_hash AS hash, ev.data_digest,
           ev.metadata_digest
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
                                e.metadata_digest);
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
                              e.causation_id, sha256(e.data), sha256(e.metadata)) = e.hash
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

-- As in 0005, naming a deleted event by logbook.missing_event_at.
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
    SELECT m.stream_id, m.stream_version INTO b_stream, b_version
      FROM logbook.missing_event_at(v_missing) m;
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

GRANT EXECUTE ON FUNCTION logbook.unused_position(bigint, bigint, bigint),
                          logbook.missing_event_at(bigint)
  TO logbook_app;
