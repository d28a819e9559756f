-- Locks the rows of the existing streams among p_stream_ids (FOR UPDATE),
-- in stream id order so two writers never deadlock, until the transaction
-- ends: this serializes the writers of one stream. One probe of the primary
-- key per id (a LATERAL subquery), the best plan at any table size, kept as
-- one generic plan rather than planned anew on every call.
CREATE OR REPLACE FUNCTION logbook.lock_streams(p_stream_ids text[]) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  PERFORM FROM (SELECT DISTINCT x.id FROM unnest(p_stream_ids) AS x(id) ORDER BY x.id) k
    CROSS JOIN LATERAL (SELECT FROM logbook.streams t WHERE t.stream_id = k.id
                           FOR UPDATE) locked;
END;
$$;

-- Internal: called by the SECURITY DEFINER append and audit functions.
REVOKE ALL ON FUNCTION logbook.lock_streams(text[]) FROM PUBLIC, logbook_app;
