-- append_events() looked up already-stored event ids with a join. A plan
-- for it cached while event_log was small (a hash join over a sequential
-- scan) stayed cached on the group committer's long-lived connection, so
-- every append scanned the whole log. This version looks each id up in the
-- unique index, a plan that stays right however the table grows. Nothing
-- else changes.

-- Appends one batch of events to one stream. Never raises for an expected
-- outcome; returns one row whose `outcome` is
--   'ok'              stored; positions and versions returned
--   'duplicate'       every event id is already stored at exactly these
--                     versions of this stream: nothing stored, the original
--                     positions returned (an idempotent retry)
--   'wrong_version'   the expected version did not hold; actual_version is
--                     the stream's version (NULL when it does not exist)
--   'event_id_reused' conflicting_event_id is stored elsewhere, at
--                     conflicting_stream_id / conflicting_version
-- and changes nothing unless the outcome is 'ok'. So several appends can
-- share one transaction, each with its own outcome.
--
-- p_expected: -1 any, -2 no stream, -3 stream exists, >= 0 exact version.
-- Payloads arrive concatenated in p_payload: for each event its data then its
-- metadata, with the byte counts in p_data_sizes and p_metadata_sizes.
CREATE OR REPLACE FUNCTION logbook.append_events(
  p_stream_id        text,
  p_expected         bigint,
  p_event_ids        uuid[],
  p_types            text[],
  p_content_types    text[],
  p_correlation_ids  text[],
  p_causation_ids    text[],
  p_payload          bytea,
  p_data_sizes       integer[],
  p_metadata_sizes   integer[])
RETURNS TABLE (
  outcome               text,
  actual_version        bigint,
  first_version         bigint,
  last_version          bigint,
  first_position        bigint,
  last_position         bigint,
  committed_at          timestamptz,
  conflicting_event_id  uuid,
  conflicting_stream_id text,
  conflicting_version   bigint)
LANGUAGE plpgsql AS $$
DECLARE
  n               integer := cardinality(p_event_ids);
  v_current       bigint;
  v_exists        boolean;
  v_found         integer;
  v_dup_ok        boolean;
  v_dup_first     bigint;
  v_seen_stream   text;
  v_seen_version  bigint;
  v_first_seen    integer;
  v_conflict_stream  text;
  v_conflict_version bigint;
  v_first_pos     bigint;
  v_last_pos      bigint;
  v_recorded_at   timestamptz;
  v_first_version bigint;
BEGIN
  -- Serialize writers: see logbook.log_head.
  SELECT h.last_position, h.last_recorded_at INTO v_last_pos, v_recorded_at
    FROM logbook.log_head h FOR UPDATE;

  SELECT s.version INTO v_current FROM logbook.streams s WHERE s.stream_id = p_stream_id;
  v_exists := FOUND;

  -- Idempotency: are any of these event ids stored already? One lookup of
  -- the unique index per id: the planner takes that path whatever the
  -- table's statistics say.
  v_found := 0;
  v_dup_ok := true;
  FOR i IN 1 .. n LOOP
    SELECT e.stream_id, e.stream_version INTO v_seen_stream, v_seen_version
      FROM logbook.event_log e WHERE e.event_id = p_event_ids[i];
    CONTINUE WHEN NOT FOUND;
    v_found := v_found + 1;
    IF v_found = 1 THEN
      v_first_seen := i;
      v_dup_first := v_seen_version - (i - 1);
      v_conflict_stream := v_seen_stream;
      v_conflict_version := v_seen_version;
    END IF;
    IF v_seen_stream <> p_stream_id OR v_seen_version <> v_dup_first + (i - 1) THEN
      v_dup_ok := false;
    END IF;
  END LOOP;
  IF v_found > 0 THEN
    IF v_found = n AND v_dup_ok
       AND (p_expected = -1 OR p_expected = -3
            OR (p_expected = -2 AND v_dup_first = 0)
            OR (p_expected >= 0 AND v_dup_first = p_expected + 1)) THEN
      RETURN QUERY
        SELECT 'duplicate'::text, v_current, f.stream_version, l.stream_version,
               f.global_position, l.global_position, f.recorded_at, NULL::uuid, NULL::text,
               NULL::bigint
          FROM logbook.event_log f, logbook.event_log l
         WHERE f.event_id = p_event_ids[1] AND l.event_id = p_event_ids[n];
      RETURN;
    END IF;
    RETURN QUERY SELECT 'event_id_reused'::text, v_current, NULL::bigint, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::timestamptz, p_event_ids[v_first_seen],
                        v_conflict_stream, v_conflict_version;
    RETURN;
  END IF;

  IF (p_expected = -2 AND v_exists)
     OR (p_expected = -3 AND NOT v_exists)
     OR (p_expected >= 0 AND (NOT v_exists OR v_current <> p_expected)) THEN
    RETURN QUERY SELECT 'wrong_version'::text, v_current, NULL::bigint, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::uuid, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  v_first_version := COALESCE(v_current + 1, 0);
  v_first_pos := v_last_pos + 1;
  v_last_pos := v_last_pos + n;
  v_recorded_at := greatest(clock_timestamp(), v_recorded_at);
  UPDATE logbook.log_head
     SET last_position = v_last_pos, last_recorded_at = v_recorded_at;

  INSERT INTO logbook.event_log (global_position, stream_id, stream_version, event_id,
                                 event_type, data, metadata, content_type,
                                 correlation_id, causation_id, recorded_at)
  SELECT v_first_pos + t.ord - 1, p_stream_id, v_first_version + t.ord - 1, t.id, t.typ,
         substring(p_payload FROM t.data_end - t.dsize - t.msize + 1 FOR t.dsize),
         substring(p_payload FROM t.data_end - t.msize + 1 FOR t.msize),
         t.ctype, NULLIF(t.corr, ''), NULLIF(t.caus, ''), v_recorded_at
    FROM (SELECT u.*, (sum(u.dsize + u.msize) OVER (ORDER BY u.ord))::integer AS data_end
            FROM unnest(p_event_ids, p_types, p_content_types, p_correlation_ids,
                        p_causation_ids, p_data_sizes, p_metadata_sizes)
                 WITH ORDINALITY AS u(id, typ, ctype, corr, caus, dsize, msize, ord)) t
   ORDER BY t.ord;

  INSERT INTO logbook.streams AS s (stream_id, version, last_position, created_at)
  VALUES (p_stream_id, v_first_version + n - 1, v_last_pos, v_recorded_at)
  ON CONFLICT (stream_id) DO UPDATE
    SET version = EXCLUDED.version, last_position = EXCLUDED.last_position;

  RETURN QUERY SELECT 'ok'::text, v_current, v_first_version, v_first_version + n - 1,
                      v_first_pos, v_last_pos, v_recorded_at, NULL::uuid, NULL::text, NULL::bigint;
END;
$$;
