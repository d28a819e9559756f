-- The receipt hash of one event (docs/receipts.md): SHA-256 over
--   'logbook-receipt-v2' | previous hash (32 bytes; zeros for version 0)
--   | len | stream id | int8 version | event id (16 bytes) | len | type
--   | len | content type | int8 recorded_at (µs since 1970-01-01 UTC)
--   | int8 schema version (-1: none) | len | correlation id | len | causation id
--   | SHA-256(data) | SHA-256(metadata) | len | tenant | len | written_by
-- where len is an int4 byte count of the UTF-8 text after it, integers are
-- big-endian, and absent correlation/causation ids are empty. An event
-- without a writer (stored before migration 0019) has a v1 receipt: the
-- same with 'logbook-receipt-v1' and without tenant and written_by.
-- logbookd computes the same with OpenSSL (store/src/receipts.cc); this one
-- is for verification in SQL, the functions that write $audit, and DBAs.
CREATE OR REPLACE FUNCTION logbook.receipt_hash(
  previous_hash bytea, stream_id text, stream_version bigint, event_id uuid, event_type text,
  content_type text, recorded_at timestamptz, schema_version bigint, correlation_id text,
  causation_id text, data_digest bytea, metadata_digest bytea, tenant text, written_by text)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(
    convert_to(CASE WHEN written_by IS NULL THEN 'logbook-receipt-v1'
                    ELSE 'logbook-receipt-v2' END, 'UTF8')
    || previous_hash
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
    || data_digest || metadata_digest
    || CASE WHEN written_by IS NULL THEN ''::bytea
            ELSE int4send(octet_length(convert_to(tenant, 'UTF8'))) || convert_to(tenant, 'UTF8')
                 || int4send(octet_length(convert_to(written_by, 'UTF8')))
                 || convert_to(written_by, 'UTF8') END)
$$;

-- Not for the application role: a session with logbookd's credentials must
-- not be handed the tool to forge receipts. The verifiers (SECURITY DEFINER)
-- and the owner use it.
REVOKE ALL ON FUNCTION logbook.receipt_hash(bytea, text, bigint, uuid, text, text, timestamptz,
                                            bigint, text, text, bytea, bytea, text, text)
  FROM PUBLIC, logbook_app;
