#include "append_plan.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "logbook/store/event_store.h"
#include "receipts.h"

namespace logbook::store {
namespace {

// ABORTED for `expected` against `stream`, saying what the stream is.
absl::Status WrongExpectedVersion(absl::string_view stream_id, ExpectedVersion expected,
                                  const StreamHead& stream) {
  const bool live = stream.exists && stream.state == StreamState::kActive;
  absl::Status status = absl::AbortedError(absl::StrCat(
      "wrong expected version for stream '", stream_id, "': expected ", Describe(expected),
      ", but the stream ",
      live            ? absl::StrCat("is at version ", stream.version)
      : stream.exists ? absl::StrCat("was deleted at version ", stream.version)
                      : std::string("does not exist")));
  if (live) status.SetPayload(kActualVersionPayload, absl::Cord(absl::StrCat(stream.version)));
  return status;
}

}  // namespace

absl::string_view AppendInput::event_id_bytes(size_t i) const {
  return absl::string_view(id_and_digests).substr(i * kIdAndDigestsBytes, 16);
}
absl::string_view AppendInput::data_digest(size_t i) const {
  return absl::string_view(id_and_digests).substr(i * kIdAndDigestsBytes + 16, kHashBytes);
}
absl::string_view AppendInput::metadata_digest(size_t i) const {
  return absl::string_view(id_and_digests)
      .substr(i * kIdAndDigestsBytes + 16 + kHashBytes, kHashBytes);
}

AppendInput PrepareAppend(std::string stream_id, ExpectedVersion expected,
                          std::vector<NewEvent> events, Writer writer) {
  static_assert(kIdAndDigestsBytes == 16 + 2 * kHashBytes);
  AppendInput a{std::move(stream_id), expected, std::move(events), std::move(writer), 0};
  a.id_and_digests.reserve(a.events.size() * kIdAndDigestsBytes);
  for (const NewEvent& e : a.events) {
    a.bytes += e.data.size() + e.metadata.size();
    a.id_and_digests += UuidBytes(e.event_id);
    a.id_and_digests += Sha256(e.data);
    a.id_and_digests += Sha256(e.metadata);
  }
  return a;
}

std::string Describe(ExpectedVersion expected) {
  switch (expected.kind) {
    case ExpectedVersion::Kind::kAny:
      return "any version";
    case ExpectedVersion::Kind::kNoStream:
      return "no stream";
    case ExpectedVersion::Kind::kStreamExists:
      return "an existing stream";
    case ExpectedVersion::Kind::kExact:
      return absl::StrCat("version ", expected.version);
  }
  return "?";
}

absl::Status CheckExpectedVersion(absl::string_view stream_id, ExpectedVersion expected,
                                  const StreamHead& stream) {
  const bool live = stream.exists && stream.state == StreamState::kActive;
  switch (expected.kind) {
    case ExpectedVersion::Kind::kAny:
      return absl::OkStatus();
    case ExpectedVersion::Kind::kNoStream:
      if (!live) return absl::OkStatus();
      break;
    case ExpectedVersion::Kind::kStreamExists:
      if (live) return absl::OkStatus();
      break;
    case ExpectedVersion::Kind::kExact:
      if (live && stream.version == expected.version) return absl::OkStatus();
      break;
  }
  return WrongExpectedVersion(stream_id, expected, stream);
}

absl::Status CheckDelete(absl::string_view stream_id, ExpectedVersion expected, bool tombstone,
                         const StreamHead& stream) {
  if (!stream.exists) {
    return absl::NotFoundError(absl::StrCat("stream '", stream_id, "' does not exist"));
  }
  if (stream.state == StreamState::kTombstoned) {
    return absl::FailedPreconditionError(
        absl::StrCat("stream '", stream_id, "' is already tombstoned"));
  }
  if (stream.state == StreamState::kSoftDeleted && !tombstone) {
    return absl::NotFoundError(absl::StrCat("stream '", stream_id, "' is already deleted"));
  }
  // A deletion needs a stream to delete: "no stream" never holds for it.
  if (expected.kind == ExpectedVersion::Kind::kNoStream) {
    return WrongExpectedVersion(stream_id, expected, stream);
  }
  return CheckExpectedVersion(stream_id, expected, stream);
}

uint64_t EventsSinceSnapshot(const StreamHead& stream) {
  const uint64_t base =
      stream.snapshot_version ? *stream.snapshot_version + 1 : stream.first_version;
  return stream.version + 1 - std::min(stream.version + 1, base);
}

bool AppendPlan::AllAccepted() const {
  return std::all_of(results.begin(), results.end(), [](const auto& r) { return r.ok(); });
}

AppendPlan PlanAppends(const std::vector<const AppendInput*>& appends,
                       std::map<std::string, StreamHead> streams, const StoredEvents& stored) {
  AppendPlan plan;
  for (const AppendInput* a : appends) streams[a->stream_id];  // Missing: does not exist.
  plan.before = streams;
  plan.results.reserve(appends.size());
  // Events written earlier in this group: id -> place (views into `appends`).
  StoredEvents written;
  uint64_t next_place = 1;
  auto find = [&](absl::string_view id) -> const StoredEvent* {
    if (auto it = written.find(id); it != written.end()) return &it->second;
    if (auto it = stored.find(id); it != stored.end()) return &it->second;
    return nullptr;
  };
  for (const AppendInput* a : appends) {
    StreamHead& s = streams[a->stream_id];
    const size_t n = a->events.size();
    plan.written.push_back(false);

    // An idempotent retry, or an event id used elsewhere?
    size_t found = 0, first_found = 0;
    bool in_group = false, same_place = true;
    uint64_t retry_first = 0;  // The version the retried events start at.
    for (size_t i = 0; i < n; ++i) {
      const StoredEvent* e = find(a->events[i].event_id);
      if (e == nullptr) continue;
      if (found++ == 0) {
        first_found = i;
        retry_first = e->version - std::min<uint64_t>(e->version, i);
        in_group = written.contains(a->events[i].event_id);
      }
      if (e->stream_id != a->stream_id || e->version != retry_first + i) same_place = false;
    }
    if (found > 0) {
      const ExpectedVersion& x = a->expected;
      const bool expected_fits =
          x.kind == ExpectedVersion::Kind::kAny || x.kind == ExpectedVersion::Kind::kStreamExists ||
          (x.kind == ExpectedVersion::Kind::kNoStream && retry_first == 0) ||
          (x.kind == ExpectedVersion::Kind::kExact && retry_first == x.version + 1);
      if (found == n && same_place && expected_fits) {
        const StoredEvent& first = *find(a->events.front().event_id);
        const StoredEvent& last = *find(a->events.back().event_id);
        AppendResult r;
        r.duplicate = true;
        r.first_version = first.version;
        r.last_version = last.version;
        r.first_position = first.position;
        r.last_position = last.position;
        r.committed_at = absl::FromUnixMicros(first.recorded_at_micros);
        r.events_since_snapshot = EventsSinceSnapshot(s);
        for (const NewEvent& e : a->events) r.event_ids.push_back(e.event_id);
        if (in_group) plan.retries_in_group.push_back(plan.results.size());
        plan.results.push_back(std::move(r));
      } else {
        const std::string& id = a->events[first_found].event_id;
        const StoredEvent& where = *find(id);
        plan.results.push_back(absl::AlreadyExistsError(
            absl::StrCat("events[", first_found, "].event_id: ", id,
                         " is already stored in stream '", where.stream_id, "' at version ",
                         where.version)));
      }
      continue;
    }

    if (s.exists && s.last_event_version && *s.last_event_version != s.version) {
      plan.results.push_back(absl::DataLossError(absl::StrCat(
          "stream '", a->stream_id, "' records version ", s.version, " but its last event is "
          "version ", *s.last_event_version, ": its row was changed outside Logbook, so nothing "
          "is appended to it (`logbook verify ", a->stream_id, "` names the break)")));
      continue;
    }
    if (s.exists && s.state == StreamState::kTombstoned) {
      plan.results.push_back(absl::FailedPreconditionError(absl::StrCat(
          "stream '", a->stream_id, "' is tombstoned (deleted for good); it cannot be written")));
      continue;
    }
    if (absl::Status fits = CheckExpectedVersion(a->stream_id, a->expected, s); !fits.ok()) {
      plan.results.push_back(std::move(fits));
      continue;
    }

    // Written: the events continue the stream's versions.
    AppendResult r;
    r.first_version = s.exists ? s.version + 1 : 0;
    r.first_position = next_place;
    for (size_t i = 0; i < n; ++i) {
      const NewEvent& e = a->events[i];
      written[e.event_id] = {a->stream_id, r.first_version + i, next_place++, 0};
      r.event_ids.push_back(e.event_id);
    }
    r.last_version = r.first_version + n - 1;
    r.last_position = next_place - 1;
    plan.events += n;
    if (plan.last_event.count(a->stream_id) == 0) plan.heads.push_back(a->stream_id);
    plan.last_event[a->stream_id] = r.last_position;
    s.exists = true;
    s.state = StreamState::kActive;
    s.version = r.last_version;
    if (s.last_event_version) s.last_event_version = r.last_version;
    s.last_position = r.last_position;
    plan.written.back() = true;
    plan.results.push_back(std::move(r));
  }
  plan.after = std::move(streams);
  return plan;
}

GroupReceipts HashReceipts(const AppendPlan& plan, const std::vector<const AppendInput*>& appends,
                           int64_t recorded_at_micros) {
  GroupReceipts receipts;
  receipts.previous_hashes.reserve(plan.events);
  receipts.hashes.reserve(plan.events);
  std::map<std::string, std::string>& heads = receipts.heads;  // Newest hash so far.
  for (size_t k = 0; k < appends.size(); ++k) {
    if (!plan.written[k]) continue;
    const AppendInput& a = *appends[k];
    auto [head, fresh] = heads.try_emplace(a.stream_id);
    if (fresh) {
      const StreamHead& before = plan.before.at(a.stream_id);
      head->second = before.exists ? before.head_hash : ZeroHash();
    }
    const uint64_t first_version = plan.results[k]->first_version;
    for (size_t i = 0; i < a.events.size(); ++i) {
      const NewEvent& e = a.events[i];
      std::string hash = ReceiptHash(
          {head->second, a.stream_id, first_version + i, a.event_id_bytes(i), e.type,
           e.content_type, recorded_at_micros, e.schema_version, e.correlation_id,
           e.causation_id, a.data_digest(i), a.metadata_digest(i), a.writer.tenant,
           a.writer.principal});
      receipts.previous_hashes.push_back(std::move(head->second));
      head->second = hash;
      receipts.hashes.push_back(std::move(hash));
    }
  }
  return receipts;
}

void FinishPlan(AppendPlan& plan, const std::vector<const AppendInput*>& appends,
                const GroupReceipts& receipts, uint64_t first_position,
                int64_t recorded_at_micros,
                const std::map<std::string, std::optional<uint64_t>>& snapshots) {
  const uint64_t shift = first_position - 1;
  const absl::Time recorded_at = absl::FromUnixMicros(recorded_at_micros);
  for (const auto& [id, snapshot] : snapshots) {
    if (auto it = plan.after.find(id); it != plan.after.end()) {
      it->second.snapshot_version = snapshot;
    }
  }
  std::map<std::string, std::string> heads;  // Each stream's newest hash so far.
  for (const auto& [id, s] : plan.before) heads[id] = s.exists ? s.head_hash : ZeroHash();
  size_t next_receipt = 0;
  for (size_t k = 0; k < plan.results.size(); ++k) {
    absl::StatusOr<AppendResult>& r = plan.results[k];
    if (!r.ok()) continue;
    std::string& head = heads[appends[k]->stream_id];
    if (plan.written[k]) {
      next_receipt += appends[k]->events.size();
      head = receipts.hashes[next_receipt - 1];
      r->first_position += shift;
      r->last_position += shift;
      r->committed_at = recorded_at;
      StreamHead s = plan.after[appends[k]->stream_id];
      s.version = r->last_version;
      r->events_since_snapshot = EventsSinceSnapshot(s);
    }
    r->head_hash = head;
  }
  for (size_t k : plan.retries_in_group) {
    plan.results[k]->first_position += shift;
    plan.results[k]->last_position += shift;
    plan.results[k]->committed_at = recorded_at;
  }
  for (const std::string& id : plan.heads) {
    StreamHead& s = plan.after[id];
    s.head_hash = heads[id];
    s.last_position += shift;
  }
}

}  // namespace logbook::store
