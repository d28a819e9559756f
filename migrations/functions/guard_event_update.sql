-- Trigger function (BEFORE UPDATE ON logbook.event_log): the one change
-- history allows is a redaction made by logbook.redact_event(), which empties
-- data and metadata and sets redaction_reason, leaving every other column,
-- the receipt included, as it was. Any other UPDATE, by anyone, raises
-- insufficient_privilege (42501).
CREATE OR REPLACE FUNCTION logbook.guard_event_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('logbook.redacting', true) = 'on'
     AND OLD.redaction_reason IS NULL AND NEW.redaction_reason IS NOT NULL
     AND NEW.data = '' AND NEW.metadata = ''
     AND (NEW.global_position, NEW.stream_id, NEW.stream_version, NEW.event_id, NEW.event_type,
          NEW.content_type, NEW.correlation_id, NEW.causation_id, NEW.recorded_at,
          NEW.schema_version, NEW.receipt_previous_hash, NEW.receipt_hash, NEW.data_digest,
          NEW.metadata_digest, NEW.tenant, NEW.written_by, NEW.traceparent)
         IS NOT DISTINCT FROM
         (OLD.global_position, OLD.stream_id, OLD.stream_version, OLD.event_id, OLD.event_type,
          OLD.content_type, OLD.correlation_id, OLD.causation_id, OLD.recorded_at,
          OLD.schema_version, OLD.receipt_previous_hash, OLD.receipt_hash, OLD.data_digest,
          OLD.metadata_digest, OLD.tenant, OLD.written_by, OLD.traceparent) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'logbook: UPDATE on logbook.event_log is not allowed; history is append-only '
                  '(redact through logbookd)'
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
