-- Trigger function: refuses the statement that fired it. The triggers that
-- use it make logbook.event_log (DELETE, TRUNCATE) and logbook.position_gaps
-- (UPDATE, DELETE, TRUNCATE) append-only for everyone, the owner included,
-- whatever their grants. Raises insufficient_privilege (42501).
CREATE OR REPLACE FUNCTION logbook.reject_history_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'logbook: % on %.% is not allowed; history is append-only',
    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
