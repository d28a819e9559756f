-- The W3C trace context of the request that appended each event
-- (docs/operations.md#traces): the traceparent gRPC metadata of the Append
-- call, as logbookd received it (checked for its format), or NULL. Reads
-- and deliveries return it, so a worker can continue the trace. It is
-- operational metadata, not evidence: the receipt does not cover it.
ALTER TABLE logbook.event_log ADD COLUMN traceparent text
  CHECK (traceparent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');

ALTER TYPE logbook.new_event ADD ATTRIBUTE traceparent text;
