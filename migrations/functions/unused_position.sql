-- A deleted event takes its receipt with it, so verification locates it from
-- what is left. This returns the lowest position after p_after and before
-- p_before that holds no event and lies in no recorded gap, provided exactly
-- p_count positions there are like that: then they are the p_count versions
-- missing between two events of one stream, in version order. NULL
-- otherwise (several deletions close together: ambiguous). Reads only.
CREATE OR REPLACE FUNCTION logbook.unused_position(p_after bigint, p_before bigint, p_count bigint)
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

GRANT EXECUTE ON FUNCTION logbook.unused_position(bigint, bigint, bigint) TO logbook_app;
