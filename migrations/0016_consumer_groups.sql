-- Consumer groups (docs/consumer-groups.md): competing consumers sharing the
-- events of a target. Everything a group knows lives here, so it survives
-- any logbookd restart and works with consumers on several instances. This
-- is working state, not history: the application role writes it directly.

-- A group: its target (a filter as ReadAll's), its settings, and how far it
-- got. Every event of the target at or below `checkpoint` is acked, skipped,
-- parked or filtered out; every one at or below `scanned_to` is either that
-- or waiting in consumer_group_pending.
CREATE TABLE logbook.consumer_groups (
  group_name            text        PRIMARY KEY
                                    CHECK (group_name ~ '^[A-Za-z0-9._-]{1,128}$'),
  target_stream_id      text        NOT NULL DEFAULT '',
  target_category       text        NOT NULL DEFAULT '',
  filter_stream_prefix  text        NOT NULL DEFAULT '',
  filter_event_types    text[]      NOT NULL DEFAULT '{}',
  strategy              text        NOT NULL CHECK (strategy IN ('per_stream', 'round_robin')),
  ack_timeout_ms        integer     NOT NULL CHECK (ack_timeout_ms BETWEEN 100 AND 3600000),
  max_deliveries        integer     NOT NULL CHECK (max_deliveries BETWEEN 1 AND 1000),
  retry_backoff_ms      integer     NOT NULL CHECK (retry_backoff_ms BETWEEN 0 AND 3600000),
  retry_backoff_max_ms  integer     NOT NULL CHECK (retry_backoff_max_ms <= 3600000),
  max_in_flight         integer     NOT NULL CHECK (max_in_flight BETWEEN 1 AND 10000),
  checkpoint            bigint      NOT NULL CHECK (checkpoint >= 0),
  scanned_to            bigint      NOT NULL,
  delivered             bigint      NOT NULL DEFAULT 0,
  acked                 bigint      NOT NULL DEFAULT 0,
  created_at            timestamptz NOT NULL DEFAULT now(),
  CHECK (retry_backoff_ms <= retry_backoff_max_ms),
  CHECK (scanned_to >= checkpoint)
);

-- Events of a group's target past its checkpoint that are not done: waiting
-- (consumer NULL, from not_before on) or in flight to `consumer`, connected
-- as `session` (a logbookd instance's name, '/', its call), until
-- lease_until. `attempts` counts deliveries, each counted
-- when it is made, so one lost with its consumer counts too.
CREATE TABLE logbook.consumer_group_pending (
  group_name       text        NOT NULL REFERENCES logbook.consumer_groups ON DELETE CASCADE,
  global_position  bigint      NOT NULL,
  stream_id        text        NOT NULL,
  attempts         integer     NOT NULL DEFAULT 0,
  consumer         text,
  session          text,
  lease_until      timestamptz,
  not_before       timestamptz NOT NULL DEFAULT '-infinity',
  last_reason      text,
  PRIMARY KEY (group_name, global_position)
);
-- PER_STREAM delivers a stream's lowest pending event only.
CREATE INDEX consumer_group_pending_stream_idx
  ON logbook.consumer_group_pending (group_name, stream_id, global_position);

-- Events set aside: parked by a consumer, or after max_deliveries.
CREATE TABLE logbook.consumer_group_parked (
  group_name       text        NOT NULL REFERENCES logbook.consumer_groups ON DELETE CASCADE,
  global_position  bigint      NOT NULL,
  attempts         integer     NOT NULL,
  reason           text        NOT NULL,
  parked_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_name, global_position)
);

-- Consumers connected now, one call (session) each: a row is live while its
-- logbookd instance renews seen_at.
CREATE TABLE logbook.consumer_group_members (
  group_name    text        NOT NULL REFERENCES logbook.consumer_groups ON DELETE CASCADE,
  consumer      text        NOT NULL CHECK (consumer ~ '^[A-Za-z0-9._-]{1,128}$'),
  session       text        NOT NULL,
  connected_at  timestamptz NOT NULL DEFAULT now(),
  seen_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_name, consumer)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON logbook.consumer_groups, logbook.consumer_group_pending,
  logbook.consumer_group_parked, logbook.consumer_group_members TO logbook_app;
