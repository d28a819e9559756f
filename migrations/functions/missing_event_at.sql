-- The stream and version of the event that was at p_position, which holds
-- none now, when the log shows it unambiguously (see unused_position): the
-- candidates are the stream whose recorded last event was there and the
-- first stream after it that skips a version. NULLs otherwise. Reads only.
CREATE OR REPLACE FUNCTION logbook.missing_event_at(p_position bigint, OUT stream_id text,
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

GRANT EXECUTE ON FUNCTION logbook.missing_event_at(bigint) TO logbook_app;
