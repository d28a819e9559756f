-- Records a checkpoint logbookd signed (store/src/pg_event_store.cc
-- CreateCheckpoint, under the advisory lock checkpoint_lock()) and returns
-- its id; NULL, recording nothing, when its position is beyond the log's
-- head or not past the newest checkpoint's. The signature is not checked
-- here (PostgreSQL has no Ed25519): verification checks it, and a row no
-- key signed only ever shows as such. Runs as the owner (SECURITY
-- DEFINER): the application role cannot write logbook.checkpoints directly.
CREATE OR REPLACE FUNCTION logbook.add_checkpoint(p_log_position bigint, p_log_hash bytea,
                                                  p_created_at timestamptz, p_key_id bytea,
                                                  p_signature bytea)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id bigint;
BEGIN
  IF p_log_position > (SELECT h.last_position FROM logbook.log_head h)
     OR p_log_position <= coalesce((SELECT max(c.log_position) FROM logbook.checkpoints c), -1)
  THEN
    RETURN NULL;
  END IF;
  INSERT INTO logbook.checkpoints (log_position, log_hash, created_at, key_id, signature)
  VALUES (p_log_position, p_log_hash, p_created_at, p_key_id, p_signature)
  RETURNING id INTO v_id;
  RETURN v_id;
END;
$$;

REVOKE ALL ON FUNCTION logbook.add_checkpoint(bigint, bytea, timestamptz, bytea, bytea)
  FROM PUBLIC;
-- logbookd signs checkpoints on its admin connection, which reads every
-- tenant (migrations/0021_tenants.sql).
GRANT EXECUTE ON FUNCTION logbook.add_checkpoint(bigint, bytea, timestamptz, bytea, bytea)
  TO logbook_app, logbook_all_tenants;
