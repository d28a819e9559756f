#include "group_convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "convert.h"

namespace logbook::service {

namespace {
constexpr int kMaxIds = 10000;
}  // namespace

absl::StatusOr<store::EventFilter> FromProto(const store::Limits& limits,
                                             const v1::ConsumerGroupTarget& target) {
  store::EventFilter filter = FromProto(target.filter());
  if (target.filter().has_category() && !target.filter().category().empty()) {
    return absl::InvalidArgumentError(
        "target.filter.category: name the category as the target (target.category)");
  }
  switch (target.kind_case()) {
    case v1::ConsumerGroupTarget::kStreamId:
      if (target.has_filter()) {
        return absl::InvalidArgumentError(
            "target.filter: applies to category and all targets; a stream_id target takes "
            "every event of the stream");
      }
      if (auto s = store::ValidateStreamId(limits, "target.stream_id", target.stream_id());
          !s.ok()) {
        return s;
      }
      filter.stream_id = target.stream_id();
      break;
    case v1::ConsumerGroupTarget::kCategory:
      if (target.category().empty()) {
        return absl::InvalidArgumentError("target.category: must not be empty");
      }
      filter.category = target.category();
      break;
    case v1::ConsumerGroupTarget::kAll:
      break;
    default:
      return absl::InvalidArgumentError("target: set one of stream_id, category or all");
  }
  if (absl::Status s = store::ValidateFilter(limits, filter); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("target.", s.message()));
  }
  return filter;
}

store::GroupSettingsPatch FromProto(const v1::ConsumerGroupSettings& s) {
  store::GroupSettingsPatch p;
  if (s.has_strategy()) {
    p.strategy = s.strategy() == v1::ROUND_ROBIN ? store::GroupStrategy::kRoundRobin
                                                 : store::GroupStrategy::kPerStream;
  }
  if (s.has_ack_timeout_ms()) p.ack_timeout_ms = s.ack_timeout_ms();
  if (s.has_max_deliveries()) p.max_deliveries = s.max_deliveries();
  if (s.has_retry_backoff_ms()) p.retry_backoff_ms = s.retry_backoff_ms();
  if (s.has_retry_backoff_max_ms()) p.retry_backoff_max_ms = s.retry_backoff_max_ms();
  if (s.has_max_in_flight()) p.max_in_flight = s.max_in_flight();
  return p;
}

store::GroupStart FromProto(const v1::CreateConsumerGroupRequest& request) {
  store::GroupStart start;
  switch (request.start_case()) {
    case v1::CreateConsumerGroupRequest::kAfterPosition:
      start.kind = store::GroupStart::kAfterPosition;
      start.after_position = request.after_position();
      break;
    case v1::CreateConsumerGroupRequest::kFromNow:
      start.kind = store::GroupStart::kNow;
      break;
    default:
      break;
  }
  return start;
}

absl::StatusOr<store::ParkedSelection> FromProto(const v1::ParkedSelection& selection) {
  store::ParkedSelection out;
  switch (selection.which_case()) {
    case v1::ParkedSelection::kAll:
      out.max_count = selection.max_count();
      return out;
    case v1::ParkedSelection::kIds: {
      const auto& ids = selection.ids().delivery_ids();
      if (ids.empty() || ids.size() > kMaxIds) {
        return absl::InvalidArgumentError(absl::StrCat(
            "selection.ids.delivery_ids: 1 to ", kMaxIds, " ids, not ", ids.size()));
      }
      if (selection.has_max_count()) {
        return absl::InvalidArgumentError(
            "selection.max_count: applies to all; the ids name every event taken");
      }
      out.ids.assign(ids.begin(), ids.end());
      std::vector<uint64_t> sorted = out.ids;
      std::sort(sorted.begin(), sorted.end());
      if (auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("selection.ids.delivery_ids: ", *twice, " appears twice"));
      }
      return out;
    }
    default:
      return absl::InvalidArgumentError("selection: set one of all or ids");
  }
}

void ToProto(const store::GroupDefinition& d, v1::ConsumerGroupInfo& out) {
  out.set_group(d.name);
  v1::ConsumerGroupTarget* target = out.mutable_target();
  if (!d.target.stream_id.empty()) {
    target->set_stream_id(d.target.stream_id);
  } else if (!d.target.category.empty()) {
    target->set_category(d.target.category);
  } else {
    target->mutable_all();
  }
  if (!d.target.stream_prefix.empty()) {
    target->mutable_filter()->set_stream_prefix(d.target.stream_prefix);
  }
  for (const std::string& type : d.target.event_types) {
    target->mutable_filter()->add_event_types(type);
  }
  v1::ConsumerGroupSettings* s = out.mutable_settings();
  s->set_strategy(d.settings.strategy == store::GroupStrategy::kRoundRobin ? v1::ROUND_ROBIN
                                                                           : v1::PER_STREAM);
  s->set_ack_timeout_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(d.settings.ack_timeout)));
  s->set_max_deliveries(d.settings.max_deliveries);
  s->set_retry_backoff_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(d.settings.retry_backoff)));
  s->set_retry_backoff_max_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(d.settings.retry_backoff_max)));
  s->set_max_in_flight(d.settings.max_in_flight);
  ToProto(d.created_at, *out.mutable_created_at());
}

void ToProto(const store::GroupInfo& info, v1::ConsumerGroupInfo& out) {
  ToProto(info.definition, out);
  out.set_checkpoint_position(info.checkpoint);
  out.set_head_position(info.head_position);
  out.set_lag_events(info.lag_events);
  out.set_lag_seconds(absl::ToDoubleSeconds(info.lag));
  for (const store::GroupMember& m : info.members) {
    v1::ConsumerGroupMember* member = out.add_members();
    member->set_consumer(m.consumer);
    member->set_instance(m.instance);
    member->set_in_flight(m.in_flight);
    member->set_streams_owned(m.streams_owned);
    ToProto(m.connected_at, *member->mutable_connected_at());
  }
  out.set_in_flight(info.in_flight);
  out.set_parked(info.parked);
  out.set_delivered(info.delivered);
  out.set_acked(info.acked);
  out.set_oldest_parked_age_seconds(absl::ToDoubleSeconds(info.oldest_parked_age));
}

void ToProto(const store::ParkedEntry& p, v1::ParkedEvent& out) {
  out.set_delivery_id(p.delivery_id);
  out.set_stream_id(p.stream_id);
  out.set_stream_version(p.stream_version);
  out.set_event_type(p.event_type);
  out.set_attempts(p.attempts);
  out.set_reason(p.reason);
  ToProto(p.parked_at, *out.mutable_parked_at());
}

}  // namespace logbook::service
