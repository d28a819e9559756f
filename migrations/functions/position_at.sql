-- The last global position recorded at or before p_time (0: none).
-- recorded_at never decreases with the position, so this is a binary search
-- over the primary key: about 2·log2(positions) index lookups. Reads only.
CREATE OR REPLACE FUNCTION logbook.position_at(p_time timestamptz) RETURNS bigint
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

GRANT EXECUTE ON FUNCTION logbook.position_at(timestamptz) TO logbook_app;
