-- Records one chunk of what the checkpoint logbookd is about to sign at
-- p_log_position hashed (store/src/pg_event_store.cc CreateCheckpoint, in
-- the transaction that then calls add_checkpoint): p_receipts holds 40 bytes
-- per event, an int8 position then its receipt hash, the first after
-- p_after_position. False, recording nothing, for a chunk that cannot belong
-- to a checkpoint still to be signed: at or below the newest checkpoint,
-- beyond the log's head, or entries outside (p_after_position,
-- p_log_position]. Verification trusts a checkpoint's chunks only when they
-- hash to its signed log hash, so a forged chunk only ever shows as such.
-- Runs as the owner (SECURITY DEFINER): the application role cannot write
-- logbook.checkpoint_receipts directly.
CREATE OR REPLACE FUNCTION logbook.add_checkpoint_receipts(p_log_position bigint,
                                                           p_after_position bigint,
                                                           p_receipts bytea)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_length integer := octet_length(p_receipts);
BEGIN
  IF v_length IS NULL OR v_length = 0 OR v_length % 40 <> 0
     OR p_log_position > (SELECT h.last_position FROM logbook.log_head h)
     OR p_log_position <= coalesce((SELECT max(c.log_position) FROM logbook.checkpoints c), -1)
     OR ('x' || encode(substring(p_receipts FROM 1 FOR 8), 'hex'))::bit(64)::bigint
        <= p_after_position
     OR ('x' || encode(substring(p_receipts FROM v_length - 39 FOR 8), 'hex'))::bit(64)::bigint
        > p_log_position
  THEN
    RETURN false;
  END IF;
  INSERT INTO logbook.checkpoint_receipts (log_position, after_position, receipts)
  VALUES (p_log_position, p_after_position, p_receipts);
  RETURN true;
END;
$$;

REVOKE ALL ON FUNCTION logbook.add_checkpoint_receipts(bigint, bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION logbook.add_checkpoint_receipts(bigint, bigint, bytea)
  TO logbook_app, logbook_all_tenants;
