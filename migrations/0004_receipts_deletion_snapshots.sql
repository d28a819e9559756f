-- Receipts (a hash chain per stream), redaction, stream deletion, snapshot
-- bookkeeping, event schema versions and time travel.
--
-- From this version on logbookd writes events itself, in one set-based
-- statement per group of appends, and computes each receipt with OpenSSL;
-- logbook.receipt_hash() below is the same computation in SQL, for the
-- backfill here and for DBAs (logbook.verify_stream, logbook.verify_all).
-- README.md "Receipts" documents the encoding.

ALTER TABLE logbook.event_log
  ADD COLUMN schema_version   bigint CHECK (schema_version BETWEEN 0 AND 4294967295),
  -- Set when the event was redacted; its data and metadata are then empty.
  ADD COLUMN redaction_reason text;

-- Receipts are looked up by position only; the (stream, version) key cost
-- every append an index insert for nothing.
ALTER TABLE logbook.receipts
  DROP CONSTRAINT receipts_stream_id_stream_version_key,
  ADD COLUMN data_digest     bytea,
  ADD COLUMN metadata_digest bytea;

-- The first version stream reads return: a soft delete moves it past the
-- stream's version at the time.
ALTER TABLE logbook.streams
  ADD COLUMN first_version bigint NOT NULL DEFAULT 0;

-- Every append updates its stream's row and the log head: room on each page
-- keeps those updates HOT (no index insert, less bloat).
ALTER TABLE logbook.streams SET (fillfactor = 70);
ALTER TABLE logbook.log_head SET (fillfactor = 50);

-- The receipt hash of one event: SHA-256 over
--   'logbook-receipt-v1' | previous hash (32 bytes; zeros for version 0)
--   | len | stream id | int8 version | event id (16 bytes) | len | type
--   | len | content type | int8 recorded_at (µs since 1970-01-01 UTC)
--   | int8 schema version (-1: none) | len | correlation id | len | causation id
--   | SHA-256(data) | SHA-256(metadata)
-- where len is an int4 byte count of the UTF-8 text after it, integers are
-- big-endian, and absent correlation/causation ids are empty.
CREATE FUNCTION logbook.receipt_hash(
  previous_hash bytea, stream_id text, stream_version bigint, event_id uuid, event_type text,
  content_type text, recorded_at timestamptz, schema_version bigint, correlation_id text,
  causation_id text, data_digest bytea, metadata_digest bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(
    convert_to('logbook-receipt-v1', 'UTF8') || previous_hash
    || int4send(octet_length(convert_to(stream_id, 'UTF8'))) || convert_to(stream_id, 'UTF8')
    || int8send(stream_version) || uuid_send(event_id)
    || int4send(octet_length(convert_to(event_type, 'UTF8'))) || convert_to(event_type, 'UTF8')
    || int4send(octet_length(convert_to(content_type, 'UTF8'))) || convert_to(content_type, 'UTF8')
    || int8send((extract(epoch FROM recorded_at) * 1000000)::bigint)
    || int8send(coalesce(schema_version, -1))
    || int4send(octet_length(convert_to(coalesce(correlation_id, ''), 'UTF8')))
    || convert_to(coalesce(correlation_id, ''), 'UTF8')
    || int4send(octet_length(convert_to(coalesce(causation_id, ''), 'UTF8')))
    || convert_to(coalesce(causation_id, ''), 'UTF8')
    || data_digest || metadata_digest)
$$;

-- Receipts for events stored before this migration, stream by stream.
DO $$
DECLARE
  e        record;
  v_stream text := NULL;
  v_prev   bytea;
  v_hash   bytea;
BEGIN
  FOR e IN SELECT * FROM logbook.event_log ORDER BY stream_id, stream_version LOOP
    IF v_stream IS DISTINCT FROM e.stream_id THEN
      IF v_stream IS NOT NULL THEN
        UPDATE logbook.streams SET head_hash = v_prev WHERE stream_id = v_stream;
      END IF;
      v_stream := e.stream_id;
      v_prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    v_hash := logbook.receipt_hash(v_prev, e.stream_id, e.stream_version, e.event_id,
                                   e.event_type, e.content_type, e.recorded_at, NULL,
                                   e.correlation_id, e.causation_id, sha256(e.data),
                                   sha256(e.metadata));
    INSERT INTO logbook.receipts (global_position, stream_id, stream_version, previous_hash,
                                  hash, algorithm, data_digest, metadata_digest)
    VALUES (e.global_position, e.stream_id, e.stream_version, v_prev, v_hash, 'sha256',
            sha256(e.data), sha256(e.metadata));
    v_prev := v_hash;
  END LOOP;
  IF v_stream IS NOT NULL THEN
    UPDATE logbook.streams SET head_hash = v_prev WHERE stream_id = v_stream;
  END IF;
END;
$$;

ALTER TABLE logbook.receipts
  ALTER COLUMN data_digest SET NOT NULL,
  ALTER COLUMN metadata_digest SET NOT NULL;

-- logbookd writes events itself now (see the top); this function would
-- write events without receipts.
DROP FUNCTION logbook.append_events(text, bigint, uuid[], text[], text[], text[], text[], bytea,
                                    integer[], integer[]);

-- The first statement of every append transaction of logbookd: takes the
-- head lock (every writer takes it first, so transactions that write events
-- commit one after another and positions become visible strictly in order),
-- then, in snapshots taken after the lock, returns what the appends need:
--   'head'   the last position, and the group's recorded_at (never earlier
--            than the last one), as microseconds and as text to bind back
--   'stream' each existing stream of p_stream_ids: version, last position,
--            head hash, state, first version, newest usable snapshot version
--   'event'  each already stored id of p_event_ids: where it is stored
-- One call instead of three round trips; logbookd decides every outcome.
CREATE FUNCTION logbook.lock_for_append(p_stream_ids text[], p_event_ids uuid[])
RETURNS TABLE (row_kind text, stream_id text, version bigint, last_position bigint,
               recorded_at_micros bigint, recorded_at text, head_hash bytea, state text,
               first_version bigint, snapshot_version bigint, event_id text)
LANGUAGE plpgsql AS $$
DECLARE
  v_position bigint;
  v_time     timestamptz;
BEGIN
  SELECT h.last_position, greatest(clock_timestamp(), h.last_recorded_at)
    INTO v_position, v_time FROM logbook.log_head h FOR UPDATE;
  RETURN QUERY SELECT 'head'::text, NULL::text, NULL::bigint, v_position,
    (extract(epoch FROM v_time) * 1000000)::bigint, v_time::text, NULL::bytea, NULL::text,
    NULL::bigint, NULL::bigint, NULL::text;
  RETURN QUERY SELECT 'stream'::text, s.stream_id, s.version, s.last_position, NULL::bigint,
    NULL::text, s.head_hash, s.state, s.first_version,
    (SELECT max(n.stream_version) FROM logbook.snapshots n
      WHERE n.stream_id = s.stream_id AND n.stream_version >= s.first_version), NULL::text
    FROM logbook.streams s WHERE s.stream_id = ANY (p_stream_ids);
  RETURN QUERY SELECT 'event'::text, e.stream_id, e.stream_version, e.global_position,
    (extract(epoch FROM e.recorded_at) * 1000000)::bigint, NULL::text, NULL::bytea, NULL::text,
    NULL::bigint, NULL::bigint, e.event_id::text
    FROM logbook.event_log e WHERE e.event_id = ANY (p_event_ids);
END;
$$;

-- Writes a group of appends that logbookd has decided and hashed: events,
-- receipts, stream heads, the log head. First it takes the head lock and
-- checks that everything is as logbookd assumed: each stream's version,
-- head hash and state (p_expected_*: version -1 for a stream that must not
-- exist), no event id stored yet, and recorded_at not before the log's
-- last. If anything differs it writes nothing and returns no rows (logbookd
-- then loads the state under the lock and decides again). Otherwise it
-- returns, for each written stream, its newest usable snapshot version and
-- the group's first position.
--
-- Per event (arrays): stream id, version, id, type, content type,
-- correlation and causation ids, schema version, and the sizes of its data
-- and metadata, which follow each other in p_payload; in p_hashes 128 bytes
-- per event: previous hash, hash, data digest, metadata digest. Per written
-- stream: id, new version, new head hash (32 bytes each in p_head_hashes),
-- and what it was expected to be.
CREATE FUNCTION logbook.append_prepared(
  p_stream_ids text[], p_versions bigint[], p_event_ids uuid[], p_types text[],
  p_content_types text[], p_correlation_ids text[], p_causation_ids text[],
  p_schema_versions bigint[], p_data_sizes integer[], p_metadata_sizes integer[],
  p_payload bytea, p_hashes bytea, p_recorded_at timestamptz,
  p_heads text[], p_head_versions bigint[], p_head_last_events bigint[], p_head_hashes bytea,
  p_expected_versions bigint[], p_expected_hashes bytea, p_expected_states text[])
RETURNS TABLE (stream_id text, snapshot_version bigint, first_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_last      bigint;
  v_last_time timestamptz;
  v_n         integer := cardinality(p_event_ids);
BEGIN
  SELECT h.last_position, h.last_recorded_at INTO v_last, v_last_time
    FROM logbook.log_head h FOR UPDATE;
  IF p_recorded_at < v_last_time
     OR EXISTS (
       SELECT FROM unnest(p_heads, p_expected_versions, p_expected_states)
                   WITH ORDINALITY AS x(id, version, state, ord)
         LEFT JOIN logbook.streams s ON s.stream_id = x.id
        WHERE CASE WHEN x.version < 0 THEN s.stream_id IS NOT NULL
                   ELSE s.stream_id IS NULL OR s.version <> x.version OR s.state <> x.state
                        OR s.head_hash IS DISTINCT FROM
                           substring(p_expected_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32)
              END)
     OR EXISTS (SELECT FROM logbook.event_log e WHERE e.event_id = ANY (p_event_ids)) THEN
    RETURN;
  END IF;

  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type, correlation_id,
                                 causation_id, recorded_at, schema_version)
  SELECT v_last + ev.ord, ev.sid, ev.version, ev.id, ev.typ,
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
  SELECT v_last + u.ord, u.sid, u.version,
         substring(p_hashes FROM u.i * 128 + 1 FOR 32),
         substring(p_hashes FROM u.i * 128 + 33 FOR 32), 'sha256',
         substring(p_hashes FROM u.i * 128 + 65 FOR 32),
         substring(p_hashes FROM u.i * 128 + 97 FOR 32)
    FROM (SELECT x.*, (x.ord - 1)::integer AS i
            FROM unnest(p_stream_ids, p_versions) WITH ORDINALITY AS x(sid, version, ord)) u;

  INSERT INTO logbook.streams AS s (stream_id, version, last_position, head_hash, created_at)
  SELECT x.id, x.version, v_last + x.last_event,
         substring(p_head_hashes FROM (x.ord::integer - 1) * 32 + 1 FOR 32), p_recorded_at
    FROM unnest(p_heads, p_head_versions, p_head_last_events)
         WITH ORDINALITY AS x(id, version, last_event, ord)
  ON CONFLICT ON CONSTRAINT streams_pkey DO UPDATE
    SET version = EXCLUDED.version, last_position = EXCLUDED.last_position,
        head_hash = EXCLUDED.head_hash, state = 'active';

  UPDATE logbook.log_head SET last_position = v_last + v_n, last_recorded_at = p_recorded_at;

  RETURN QUERY
    SELECT x.id, (SELECT max(n.stream_version) FROM logbook.snapshots n, logbook.streams st
                   WHERE n.stream_id = x.id AND st.stream_id = x.id
                     AND n.stream_version >= st.first_version),
           v_last + 1
      FROM unnest(p_heads) AS x(id);
END;
$$;

-- Redaction is the one change history allows: an UPDATE that empties data
-- and metadata and sets redaction_reason, made by logbook.redact_event().
CREATE FUNCTION logbook.guard_event_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('logbook.redacting', true) = 'on'
     AND OLD.redaction_reason IS NULL AND NEW.redaction_reason IS NOT NULL
     AND NEW.data = '' AND NEW.metadata = ''
     AND (NEW.global_position, NEW.stream_id, NEW.stream_version, NEW.event_id, NEW.event_type,
          NEW.content_type, NEW.correlation_id, NEW.causation_id, NEW.recorded_at,
          NEW.schema_version)
         IS NOT DISTINCT FROM
         (OLD.global_position, OLD.stream_id, OLD.stream_version, OLD.event_id, OLD.event_type,
          OLD.content_type, OLD.correlation_id, OLD.causation_id, OLD.recorded_at,
          OLD.schema_version) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'logbook: UPDATE on logbook.event_log is not allowed; history is append-only '
                  '(redact through logbookd)'
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER event_log_append_only ON logbook.event_log;
CREATE TRIGGER event_log_no_delete BEFORE DELETE ON logbook.event_log
  FOR EACH ROW EXECUTE FUNCTION logbook.reject_history_change();
CREATE TRIGGER event_log_guard_update BEFORE UPDATE ON logbook.event_log
  FOR EACH ROW EXECUTE FUNCTION logbook.guard_event_update();

-- Empties one event's payload and records why. Runs as the schema owner
-- (SECURITY DEFINER), so logbook_app can redact without UPDATE rights on
-- event_log. Returns false when the event is already redacted or missing.
-- logbookd calls it in the transaction that also appends the $audit event.
CREATE FUNCTION logbook.redact_event(p_position bigint, p_reason text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM set_config('logbook.redacting', 'on', true);
  UPDATE logbook.event_log
     SET data = '', metadata = '', redaction_reason = p_reason
   WHERE global_position = p_position AND redaction_reason IS NULL;
  PERFORM set_config('logbook.redacting', 'off', true);
  RETURN FOUND;
END;
$$;
REVOKE ALL ON FUNCTION logbook.redact_event(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.redact_event(bigint, text) TO logbook_app;

-- The last global position recorded at or before `p_time` (0: none).
-- recorded_at never decreases with the position, so this is a binary search
-- over the primary key: about 2·log2(positions) index lookups.
CREATE FUNCTION logbook.position_at(p_time timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lo  bigint := 0;
  hi  bigint;
  mid bigint;
  t   timestamptz;
BEGIN
  SELECT last_position INTO hi FROM logbook.log_head;
  -- Invariant: position lo is at or before p_time (0 counts as such), the
  -- answer is in [lo, hi].
  WHILE lo < hi LOOP
    mid := lo + (hi - lo + 1) / 2;
    SELECT recorded_at INTO t FROM logbook.event_log
     WHERE global_position >= mid ORDER BY global_position LIMIT 1;
    IF t IS NOT NULL AND t <= p_time THEN
      lo := mid;
    ELSE
      hi := mid - 1;
    END IF;
  END LOOP;
  RETURN lo;
END;
$$;

-- Verification in plain SQL, the same checks logbookd's Verify makes.
-- One row: ok, events checked, the recomputed head hash, and for a broken
-- stream the first broken event (by version), a reason (data_changed,
-- metadata_changed, event_missing, event_inserted, receipt_changed,
-- versions_out_of_sequence, event_changed, redaction_not_audited) and a
-- detail. Usage: SELECT * FROM logbook.verify_stream('order-42');
CREATE FUNCTION logbook.verify_stream(p_stream_id text)
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
           r.global_position AS r_pos, r.stream_id AS r_sid, r.stream_version AS r_ver,
           r.previous_hash, r.hash, r.data_digest, r.metadata_digest
      FROM logbook.event_log ev
      LEFT JOIN logbook.receipts r ON r.global_position = ev.global_position
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
        (SELECT min(rr.global_position) FROM logbook.receipts rr
          WHERE rr.stream_id = p_stream_id AND rr.stream_version = v_next
            AND rr.global_position > v_last_pos AND rr.global_position < e.pos),
        'event_missing'::text, format('version %s is gone', v_next);
      RETURN;
    END IF;
    IF e.pos <= v_last_pos THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos,
        'versions_out_of_sequence'::text,
        format('position %s does not follow the previous version''s %s', e.pos, v_last_pos);
      RETURN;
    END IF;
    IF e.r_pos IS NULL THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'event_inserted'::text,
        'the event has no receipt'::text;
      RETURN;
    END IF;
    IF e.r_sid IS DISTINCT FROM e.sid OR e.r_ver IS DISTINCT FROM e.ver THEN
      RETURN QUERY SELECT false, v_count, NULL::bytea, e.ver, e.pos, 'event_changed'::text,
        format('the receipt is for %s@%s', e.r_sid, e.r_ver);
      RETURN;
    END IF;
    v_h := logbook.receipt_hash(e.previous_hash, e.sid, e.ver, e.event_id, e.event_type,
                                e.content_type, e.recorded_at, e.schema_version,
                                e.correlation_id, e.causation_id, e.data_digest,
                                e.metadata_digest);
    IF v_h IS DISTINCT FROM e.hash THEN
      -- Which side changed? The receipt, if its digests were edited or the
      -- next link does not confirm its hash; otherwise the event.
      SELECT rn.previous_hash INTO v_confirm
        FROM logbook.event_log en JOIN logbook.receipts rn ON rn.global_position = en.global_position
       WHERE en.stream_id = p_stream_id AND en.stream_version = e.ver + 1;
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
    RETURN QUERY SELECT false, v_count, NULL::bytea, v_next, NULL::bigint, 'event_missing'::text,
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

-- Every stream, plus the log's positions: contiguous from 1 to the head,
-- every event's stream recorded. Returns the broken event with the lowest
-- position, if any. Usage: SELECT * FROM logbook.verify_all();
CREATE FUNCTION logbook.verify_all()
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
BEGIN
  SELECT h.last_position INTO v_head FROM logbook.log_head h;
  -- Positions: a hole is a deleted event.
  SELECT q.pos + 1 INTO v_missing FROM (
    SELECT ev.global_position AS pos,
           lead(ev.global_position) OVER (ORDER BY ev.global_position) AS next
      FROM logbook.event_log ev
     UNION ALL SELECT 0, min(ev.global_position) FROM logbook.event_log ev) q
   WHERE q.pos < v_head AND coalesce(q.next, v_head + 1) <> q.pos + 1
   ORDER BY q.pos LIMIT 1;
  IF v_missing IS NOT NULL THEN
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

GRANT SELECT, INSERT, DELETE, UPDATE ON logbook.snapshots TO logbook_app;
GRANT EXECUTE ON FUNCTION logbook.lock_for_append(text[], uuid[]),
                          logbook.append_prepared(text[], bigint[], uuid[], text[], text[], text[],
                                                  text[], bigint[], integer[], integer[], bytea,
                                                  bytea, timestamptz, text[], bigint[], bigint[],
                                                  bytea, bigint[], bytea, text[])
  TO logbook_app;
GRANT EXECUTE ON FUNCTION logbook.receipt_hash(bytea, text, bigint, uuid, text, text, timestamptz,
                                               bigint, text, text, bytea, bytea),
                          logbook.position_at(timestamptz),
                          logbook.verify_stream(text),
                          logbook.verify_all()
  TO logbook_app;
