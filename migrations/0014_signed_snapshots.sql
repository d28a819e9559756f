-- Snapshots carry what they were computed from: the stream's receipt hash at
-- their version (head_hash) and the SHA-256 of their state, and, on a
-- logbookd with a signing key, its Ed25519 signature over both
-- (docs/receipts.md "Signed snapshots"). LoadSnapshot refuses one that no
-- longer matches. Snapshots saved before this have none of these.
ALTER TABLE logbook.snapshots
  ADD COLUMN head_hash bytea CHECK (octet_length(head_hash) = 32),
  ADD COLUMN state_digest bytea CHECK (octet_length(state_digest) = 32),
  ADD COLUMN key_id bytea CHECK (octet_length(key_id) = 32),
  ADD COLUMN signature bytea CHECK (octet_length(signature) = 64);
COMMENT ON TABLE logbook.snapshots IS
  'Client-computed states of streams as of a version, with the stream''s receipt hash there and '
  'the state''s digest, signed by logbookd''s key when it has one; the newest few per stream.';
