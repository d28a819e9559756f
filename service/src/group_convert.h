// proto <-> store for consumer groups. Pure.
#pragma once

#include "absl/status/statusor.h"
#include "logbook/store/consumer_groups.h"
#include "logbook/v1/event_store.pb.h"

namespace logbook::service {

// INVALID_ARGUMENT naming the field when the target is unset or malformed.
absl::StatusOr<store::EventFilter> FromProto(const store::Limits& limits,
                                             const v1::ConsumerGroupTarget& target);
store::GroupSettingsPatch FromProto(const v1::ConsumerGroupSettings& settings);
store::GroupStart FromProto(const v1::CreateConsumerGroupRequest& request);
// INVALID_ARGUMENT naming the field: a group name, and with `all` unset 1
// to 10,000 ids, none twice.
absl::StatusOr<store::ParkedSelection> FromProto(const v1::ParkedSelection& selection);

void ToProto(const store::GroupDefinition& definition, v1::ConsumerGroupInfo& out);
void ToProto(const store::GroupInfo& info, v1::ConsumerGroupInfo& out);
void ToProto(const store::ParkedEntry& parked, v1::ParkedEvent& out);

}  // namespace logbook::service
