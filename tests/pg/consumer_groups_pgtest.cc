// Consumer groups against a real PostgreSQL, as the application role: the
// definitions, and the steps a logbookd instance takes for its consumers
// (join, fill, claim, ack, nack, leave), with the group's rules: per-stream
// order, every delivery counted, parking, replay, a checkpoint that moves
// only over what is done.
#include "logbook/store/consumer_groups.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "events.h"
#include "logbook/store/event_store.h"
#include "test_env.h"

namespace logbook::store {
namespace {

using testing::Event;
using testing::QueryValue;

constexpr char kHere[] = "instance-a/1";  // A session of instance-a.

class ConsumerGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = testing::CreateMigratedDatabase();
    StoreOptions options;
    options.dsn = testing::AsRole(dsn_, "logbook_app");
    auto store = EventStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto groups = ConsumerGroups::Open(options);
    ASSERT_TRUE(groups.ok()) << groups.status();
    groups_ = *std::move(groups);
  }

  void Append(const std::string& stream, int n, const std::string& type = "Happened") {
    std::vector<NewEvent> events;
    for (int i = 0; i < n; ++i) events.push_back(Event(type, "{}"));
    ASSERT_TRUE(store_->Append(stream, ExpectedVersion::Any(), events).ok());
  }

  GroupDefinition Create(const std::string& name, EventFilter target,
                         GroupSettingsPatch settings = {}, GroupStart start = {}) {
    auto d = groups_->Create(name, target, start, settings);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : GroupDefinition{};
  }

  // "position@attempt" of what `consumer` claims, in order.
  std::string Claim(const std::string& group, const std::string& consumer, size_t max,
                    const std::vector<std::string>& members = {"c1"}) {
    auto claimed = groups_->Claim(group, consumer, kHere, members, max);
    if (!claimed.ok()) return claimed.status().ToString();
    std::vector<std::string> out;
    for (const GroupDelivery& d : *claimed) {
      out.push_back(absl::StrCat(d.event.stream_id, "@", d.event.stream_version, "#",
                                 d.event.global_position, "x", d.attempt));
    }
    return absl::StrJoin(out, " ");
  }

  GroupInfo Info(const std::string& group) {
    auto info = groups_->Get(group);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : GroupInfo{};
  }

  // Makes every lease of `group` run out now.
  void ExpireLeases(const std::string& group) {
    testing::Exec(dsn_, absl::StrCat("UPDATE logbook.consumer_group_pending SET lease_until = "
                                     "now() - interval '1 second' WHERE group_name = '",
                                     group, "' AND lease_until IS NOT NULL"));
  }

  std::string dsn_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<ConsumerGroups> groups_;
};

EventFilter Category(const std::string& c) {
  EventFilter f;
  f.category = c;
  return f;
}

TEST(GroupRules, SettingsNameTheFieldOutOfRange) {
  GroupSettingsPatch p;
  p.ack_timeout_ms = 99;
  EXPECT_EQ(ApplySettings({}, p).status(),
            absl::InvalidArgumentError("settings.ack_timeout_ms: 99 is outside 100..3600000"));
  p = {};
  p.max_deliveries = 0;
  EXPECT_EQ(ApplySettings({}, p).status(),
            absl::InvalidArgumentError("settings.max_deliveries: 0 is outside 1..1000"));
  p = {};
  p.retry_backoff_ms = 70000;  // Above the default maximum of 60,000.
  EXPECT_EQ(ApplySettings({}, p).status(),
            absl::InvalidArgumentError(
                "settings.retry_backoff_ms: 70000 is more than retry_backoff_max_ms 60000"));
  p.retry_backoff_max_ms = 70000;
  auto s = ApplySettings({}, p);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->retry_backoff, absl::Seconds(70));
  EXPECT_EQ(s->max_in_flight, 100u);  // Untouched: the default.
  p = {};
  p.max_in_flight = 10001;
  EXPECT_EQ(ApplySettings({}, p).status(),
            absl::InvalidArgumentError("settings.max_in_flight: 10001 is outside 1..10000"));
}

TEST(GroupRules, RetriesBackOffDoublingUpToTheMaximum) {
  GroupSettings s;  // 1 s doubling to 60 s.
  EXPECT_EQ(RetryDelay(s, 1), absl::Seconds(1));
  EXPECT_EQ(RetryDelay(s, 2), absl::Seconds(2));
  EXPECT_EQ(RetryDelay(s, 6), absl::Seconds(32));
  EXPECT_EQ(RetryDelay(s, 7), absl::Seconds(60));
  EXPECT_EQ(RetryDelay(s, 1000), absl::Seconds(60));
  s.retry_backoff = absl::ZeroDuration();
  EXPECT_EQ(RetryDelay(s, 5), absl::ZeroDuration());
}

// A group's key names its tenant unless that is the default one; a name
// holding '/' (which no valid name does) cannot pass for another tenant's.
TEST(GroupRules, KeysQualifyTheGroupsOfEveryTenantButTheDefault) {
  EXPECT_EQ(GroupKey(kDefaultTenant, "emails"), "emails");
  EXPECT_EQ(GroupKey("acme", "emails"), "acme/emails");
  EXPECT_EQ(GroupKey(kDefaultTenant, "acme/emails"), "default/acme/emails");
  EXPECT_EQ(TenantOfGroup("emails"), "default");
  EXPECT_EQ(NameOfGroup("emails"), "emails");
  EXPECT_EQ(TenantOfGroup("acme/emails"), "acme");
  EXPECT_EQ(NameOfGroup("acme/emails"), "emails");
  EXPECT_EQ(TenantOfGroup("default/acme/emails"), "default");
  EXPECT_EQ(NameOfGroup("default/acme/emails"), "acme/emails");
  EXPECT_FALSE(ValidateGroupName("group", NameOfGroup("default/acme/emails")).ok());
}

TEST(GroupRules, NamesAreShortPlainWords) {
  EXPECT_TRUE(ValidateGroupName("group", "orders.emails-v2_x").ok());
  EXPECT_EQ(ValidateGroupName("group", "bad name!"),
            absl::InvalidArgumentError(
                "group: only letters, digits, '.', '_' and '-' are allowed"));
  EXPECT_EQ(ValidateGroupName("group", ""),
            absl::InvalidArgumentError("group: must be 1 to 128 bytes, not 0"));
  EXPECT_EQ(ValidateGroupName("join.consumer", std::string(129, 'a')),
            absl::InvalidArgumentError("join.consumer: must be 1 to 128 bytes, not 129"));
}

TEST_F(ConsumerGroupsTest, GroupsAreCreatedDescribedUpdatedAndDeleted) {
  Append("order-1", 2);
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  rr.max_deliveries = 3;
  const GroupDefinition d = Create("emails", Category("order"), rr);
  EXPECT_EQ(d.name, "emails");
  EXPECT_EQ(d.target.category, "order");
  EXPECT_EQ(d.settings.strategy, GroupStrategy::kRoundRobin);
  EXPECT_EQ(d.settings.max_deliveries, 3u);
  EXPECT_EQ(d.settings.ack_timeout, absl::Seconds(30));
  EXPECT_EQ(groups_->Create("emails", Category("order"), {}, {}).status(),
            absl::AlreadyExistsError("consumer group 'emails' already exists"));
  EXPECT_EQ(groups_->Create("bad name!", Category("order"), {}, {}).status(),
            absl::InvalidArgumentError(
                "group: only letters, digits, '.', '_' and '-' are allowed"));

  GroupInfo info = Info("emails");
  EXPECT_EQ(info.checkpoint, 0u);
  EXPECT_EQ(info.head_position, 2u);
  EXPECT_EQ(info.lag_events, 2u);
  EXPECT_EQ(info.in_flight, 0u);

  GroupSettingsPatch longer;
  longer.ack_timeout_ms = 5000;
  auto updated = groups_->Update("emails", longer);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->settings.ack_timeout, absl::Seconds(5));
  EXPECT_EQ(updated->settings.max_deliveries, 3u);  // Kept.
  EXPECT_EQ(groups_->Update("nope", longer).status(),
            absl::NotFoundError("consumer group 'nope' does not exist"));

  // From now: the existing events are behind it.
  GroupStart now;
  now.kind = GroupStart::kNow;
  Create("audit", EventFilter{}, {}, now);
  EXPECT_EQ(Info("audit").checkpoint, 2u);
  EXPECT_EQ(Info("audit").lag_events, 0u);

  auto all = groups_->List(kDefaultTenant);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].definition.name, "audit");
  EXPECT_EQ((*all)[1].definition.name, "emails");

  EXPECT_TRUE(groups_->Delete("emails").ok());
  EXPECT_EQ(groups_->Delete("emails"),
            absl::NotFoundError("consumer group 'emails' does not exist"));
  EXPECT_EQ(groups_->Get("emails").status(),
            absl::NotFoundError("consumer group 'emails' does not exist"));
}

TEST_F(ConsumerGroupsTest, EveryEventIsDeliveredUntilAckedAndTheCheckpointFollows) {
  Append("order-1", 2);
  Append("user-1", 1);
  Append("order-2", 1);
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  Create("g", Category("order"), rr);
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  auto filled = groups_->Fill("g", 100);
  ASSERT_TRUE(filled.ok()) << filled.status();
  EXPECT_TRUE(*filled);
  EXPECT_EQ(Claim("g", "c1", 2), "order-1@0#1x1 order-1@1#2x1");
  EXPECT_EQ(Claim("g", "c1", 2), "");  // Two in flight, at most two.
  EXPECT_EQ(Claim("g", "c1", 3), "order-2@0#4x1");
  EXPECT_EQ(Info("g").in_flight, 3u);
  EXPECT_EQ(Info("g").checkpoint, 0u);

  // An ack of something it does not hold changes nothing.
  EXPECT_EQ(groups_->Ack("g", "c1", kHere, {2, 3}),
            absl::FailedPreconditionError(
                "ack: delivery 3 is not held by consumer 'c1' (settled already, or delivered "
                "again after its ack_timeout)"));
  EXPECT_EQ(Info("g").in_flight, 3u);
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {2}).ok());
  EXPECT_EQ(Info("g").checkpoint, 0u);  // Position 1 is not acked.
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {1, 4}).ok());
  const GroupInfo info = Info("g");
  EXPECT_EQ(info.checkpoint, 4u);  // Over user-1 at 3, filtered out.
  EXPECT_EQ(info.delivered, 3u);
  EXPECT_EQ(info.acked, 3u);
  EXPECT_EQ(info.lag_events, 0u);
  ASSERT_EQ(info.members.size(), 1u);
  EXPECT_EQ(info.members[0].consumer, "c1");
  EXPECT_EQ(info.members[0].instance, "instance-a");  // Its session is instance-a/1.

  // A second connection of the same consumer is refused while it lives.
  EXPECT_EQ(groups_->Join("g", "c1", "instance-b/1").status(),
            absl::AlreadyExistsError("consumer 'c1' is already connected to group 'g'"));
  // Another call of the same instance takes over (logbookd checked that no
  // call of its own holds the name), and gets back what the first held.
  ASSERT_TRUE(groups_->Join("g", "c1", "instance-a/2").ok());
}

// StoreOptions::member_timeout decides how long an unrenewed member lives:
// renewed 5 s ago, it is live for an instance with the default 10 s and
// gone for one with 3 s, which may then take its name. Out of bounds is
// refused.
TEST_F(ConsumerGroupsTest, TheMemberTimeoutIsAnOption) {
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Join("g", "c1", "instance-a/1").ok());
  ASSERT_EQ(testing::Exec(dsn_, "UPDATE logbook.consumer_group_members "
                                "SET seen_at = now() - interval '5 seconds'"),
            "");
  StoreOptions options;
  options.dsn = testing::AsRole(dsn_, "logbook_app");
  options.member_timeout = absl::Seconds(3);
  auto quick = ConsumerGroups::Open(options);
  ASSERT_TRUE(quick.ok()) << quick.status();
  EXPECT_EQ(Info("g").members.size(), 1u);
  auto seen_by_quick = (*quick)->Get("g");
  ASSERT_TRUE(seen_by_quick.ok()) << seen_by_quick.status();
  EXPECT_EQ(seen_by_quick->members.size(), 0u);
  EXPECT_EQ(groups_->Join("g", "c1", "instance-b/1").status(),
            absl::AlreadyExistsError("consumer 'c1' is already connected to group 'g'"));
  EXPECT_TRUE((*quick)->Join("g", "c1", "instance-b/1").ok());

  for (absl::Duration bad : {absl::Seconds(2), absl::Hours(2)}) {
    options.member_timeout = bad;
    EXPECT_EQ(ConsumerGroups::Open(options).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  options.member_timeout = absl::Seconds(2);
  EXPECT_EQ(ConsumerGroups::Open(options).status().message(),
            "member timeout: 2s is outside 3s to 1h (members are renewed every second)");
}

// PER_STREAM: a stream's next event waits until the one before it is
// settled, streams are spread over the live members, and one in flight
// stays with its consumer even when the members change.
TEST_F(ConsumerGroupsTest, PerStreamKeepsEachStreamInOrderAndOnOneConsumer) {
  Append("order-1", 3);
  Append("order-2", 2);
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  const std::vector<std::string> one = {"c1"};
  EXPECT_EQ(Claim("g", "c1", 10, one), "order-1@0#1x1 order-2@0#4x1");
  EXPECT_EQ(Claim("g", "c1", 10, one), "");  // Their next versions wait.
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {1}).ok());
  EXPECT_EQ(Claim("g", "c1", 10, one), "order-1@1#2x1");

  // c2 joins: hashing over {c1, c2} gives both streams to c2, but they
  // move only once nothing of them is in flight (c1 holds #2 and #4).
  const std::vector<std::string> two = {"c1", "c2"};
  EXPECT_EQ(Claim("g", "c2", 10, two), "");
  EXPECT_EQ(Claim("g", "c1", 10, two), "");  // Not c1's any more.
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {2, 4}).ok());
  EXPECT_EQ(Claim("g", "c1", 10, two), "");
  EXPECT_EQ(Claim("g", "c2", 10, two), "order-1@2#3x1 order-2@1#5x1");
  // Spread over both, with more streams: each stream on one member.
  Append("order-3", 1);
  Append("order-4", 1);
  Append("order-5", 1);
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Claim("g", "c1", 10, two), "order-5@0#8x1");
  EXPECT_EQ(Claim("g", "c2", 10, two), "order-3@0#6x1 order-4@0#7x1");
}

// What AckAndContinue claims, as Claim above prints it.
std::string Continued(ConsumerGroups& groups, const std::string& group,
                      const std::string& consumer, const std::vector<uint64_t>& ids) {
  auto next = groups.AckAndContinue(group, consumer, kHere, ids);
  if (!next.ok()) return next.status().ToString();
  std::vector<std::string> out;
  for (const GroupDelivery& d : *next) {
    out.push_back(absl::StrCat(d.event.stream_id, "@", d.event.stream_version, "#",
                               d.event.global_position, "x", d.attempt));
  }
  return absl::StrJoin(out, " ");
}

// PER_STREAM: an ack claims the next event of each stream acked for the
// same consumer at once, on Claim's terms: in version order, nothing of a
// stream in flight twice, and only streams hashed to it over the live
// members (from the members table, as the dispatcher's Heartbeat sees them).
TEST_F(ConsumerGroupsTest, AnAckContinuesEachStreamOnTheSameConsumer) {
  Append("order-1", 3);
  Append("order-2", 2);
  Append("order-3", 1);
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@0#1x1 order-2@0#4x1 order-3@0#6x1");
  EXPECT_EQ(Continued(*groups_, "g", "c1", {1, 4, 6}), "order-1@1#2x1 order-2@1#5x1");
  EXPECT_EQ(Claim("g", "c1", 10), "");  // Each stream has one in flight.
  GroupInfo info = Info("g");
  EXPECT_EQ(info.delivered, 5u);
  EXPECT_EQ(info.acked, 3u);
  EXPECT_EQ(info.in_flight, 2u);

  // Held by nobody: nothing is acked, nothing claimed.
  EXPECT_EQ(Continued(*groups_, "g", "c1", {2, 9}),
            "FAILED_PRECONDITION: ack: delivery 9 is not held by consumer 'c1' (settled "
            "already, or delivered again after its ack_timeout)");
  EXPECT_EQ(Info("g").acked, 3u);

  // A retry waiting blocks its stream: the ack of order-2's last event
  // continues nothing, and order-1 waits for #2 to come back.
  ASSERT_TRUE(groups_->Nack("g", "c1", kHere, {2}, NackAction::kRetry, absl::Hours(1), "later")
                  .ok());
  EXPECT_EQ(Continued(*groups_, "g", "c1", {5}), "");

  // c2 joins: hashing over {c1, c2} gives order-1 to c2, so an ack by c1
  // of order-1's event hands on nothing; c2's claim takes the next.
  Append("order-1", 2);
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  ASSERT_TRUE(groups_->Join("g", "c2", kHere).ok());
  testing::Exec(dsn_, "UPDATE logbook.consumer_group_pending SET not_before = now()");
  EXPECT_EQ(Claim("g", "c1", 10, {"c1", "c2"}), "");
  EXPECT_EQ(Claim("g", "c2", 10, {"c1", "c2"}), "order-1@1#2x2");
  EXPECT_EQ(Continued(*groups_, "g", "c2", {2}), "order-1@2#3x1");
  EXPECT_EQ(Continued(*groups_, "g", "c2", {3}), "order-1@3#7x1");
  info = Info("g");
  EXPECT_EQ(info.delivered, 8u);
  EXPECT_EQ(info.acked, 6u);

  // ROUND_ROBIN: the ack settles its lease; nothing follows.
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  Create("rr", Category("order"), rr);
  ASSERT_TRUE(groups_->Join("rr", "c1", kHere).ok());
  EXPECT_EQ(Claim("rr", "c1", 1), "order-1@0#1x1");
  EXPECT_EQ(Continued(*groups_, "rr", "c1", {1}), "");
  EXPECT_EQ(Info("rr").acked, 1u);
  EXPECT_EQ(Continued(*groups_, "missing", "c1", {1}),
            "NOT_FOUND: consumer group 'missing' does not exist");
}

// PER_STREAM brings a stream's events in as one run (migrations/0023): a
// row for them all, claimed as one, its events sent one after the other
// from memory. An event that goes back leaves its run as a row of its own;
// a run whose instance is gone comes back a row per event, each counted.
TEST_F(ConsumerGroupsTest, APerStreamRunIsOneRowItsEventsFollowFromMemory) {
  Append("order-1", 4);
  Append("order-2", 1);
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  const std::string rows =
      "SELECT string_agg(global_position || ':' || coalesce(through_version::text, '-') || ':' ||"
      " events || ':' || attempts || ':' || coalesce(consumer, '-'), ' '"
      " ORDER BY global_position) FROM logbook.consumer_group_pending";
  EXPECT_EQ(QueryValue(dsn_, rows), "1:3:4:0:- 5:-:1:0:-");
  EXPECT_EQ(Info("g").lag_events, 5u);

  EXPECT_EQ(Claim("g", "c1", 10), "order-1@0#1x1 order-2@0#5x1");
  EXPECT_EQ(Continued(*groups_, "g", "c1", {1}), "order-1@1#2x1");
  EXPECT_EQ(QueryValue(dsn_, rows), "1:3:4:1:c1 5:-:1:1:c1");  // No write for the ack.
  // A nack: #2 leaves the run, held with its one delivery, then waits for
  // its retry; the rest of the run waits behind it, free.
  ASSERT_TRUE(
      groups_->Nack("g", "c1", kHere, {2}, NackAction::kRetry, absl::Hours(1), "later").ok());
  EXPECT_EQ(QueryValue(dsn_, rows), "2:-:1:1:- 3:3:2:0:- 5:-:1:1:c1");
  EXPECT_EQ(Claim("g", "c1", 10), "");  // order-1 waits for #2.
  testing::Exec(dsn_, "UPDATE logbook.consumer_group_pending SET not_before = now()");
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@1#2x2");
  EXPECT_EQ(Continued(*groups_, "g", "c1", {2}), "order-1@2#3x1");  // The run, claimed on.
  EXPECT_EQ(QueryValue(dsn_, rows), "3:3:2:1:c1 5:-:1:1:c1");

  // Its instance gone (the run's row lapsed): each event of it comes back
  // as a row of its own, counted as delivered once.
  testing::Exec(dsn_,
                "UPDATE logbook.consumer_group_pending SET lease_until = now() - "
                "interval '1 minute' WHERE through_version IS NOT NULL");
  auto other = ConsumerGroups::Open([&] {
    StoreOptions options;
    options.dsn = testing::AsRole(dsn_, "logbook_app");
    return options;
  }());
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->Fill("g", 100).ok());
  EXPECT_EQ(QueryValue(dsn_, rows), "3:-:1:1:- 4:-:1:1:- 5:-:1:1:c1");
  auto claimed = (*other)->Claim("g", "c2", "instance-b/1", {"c2"}, 10);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].event.global_position, 3u);
  EXPECT_EQ((*claimed)[0].attempt, 2u);
  const GroupInfo info = Info("g");
  EXPECT_EQ(info.delivered, 6u);  // #1, #5, #2 twice, #3 twice.
  EXPECT_EQ(info.acked, 2u);      // #1 and #2.
}

// When the live members change, a run ends after its event out: the rest
// goes back, to whoever hashing now gives its stream.
TEST_F(ConsumerGroupsTest, ARunEndsWhenTheMembersChange) {
  Append("order-1", 3);
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Claim("g", "c1", 10, {"c1"}), "order-1@0#1x1");
  // c2 joins; hashing over both gives order-1 to c2 (as in
  // PerStreamKeepsEachStreamInOrderAndOnOneConsumer).
  EXPECT_EQ(Claim("g", "c2", 10, {"c1", "c2"}), "");
  EXPECT_EQ(Continued(*groups_, "g", "c1", {1}), "");
  EXPECT_EQ(Claim("g", "c1", 10, {"c1", "c2"}), "");
  EXPECT_EQ(QueryValue(dsn_,
                       "SELECT global_position || ':' || events || ':' || attempts"
                       " FROM logbook.consumer_group_pending"),
            "2:2:0");
  EXPECT_EQ(Claim("g", "c2", 10, {"c1", "c2"}), "order-1@1#2x1");
}

// "n: s1 s2 ..." of what Assignment says `consumer` owns, or "none".
std::string Owned(ConsumerGroups& groups, const std::string& group, const std::string& consumer,
                  const std::vector<std::string>& members, size_t max_streams = 100) {
  auto a = groups.Assignment(group, consumer, members, max_streams);
  if (!a.ok()) return a.status().ToString();
  if (!a->has_value()) return "none";
  EXPECT_EQ((*a)->members, members);
  return absl::StrCat((*a)->streams_owned, ": ", absl::StrJoin((*a)->stream_ids, " "));
}

TEST_F(ConsumerGroupsTest, AnAssignmentNamesTheStreamsClaimsWouldGive) {
  for (int i = 1; i <= 5; ++i) Append(absl::StrCat("order-", i), 2);
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  const std::vector<std::string> two = {"c1", "c2"};
  // Hashing over {c1, c2}: what each owns is what its claims deliver
  // (as PerStreamKeepsEachStreamInOrderAndOnOneConsumer found).
  EXPECT_EQ(Owned(*groups_, "g", "c1", two), "1: order-5");
  EXPECT_EQ(Owned(*groups_, "g", "c2", two), "4: order-1 order-2 order-3 order-4");
  EXPECT_EQ(Owned(*groups_, "g", "c2", two, 2), "4: order-1 order-2");
  EXPECT_EQ(Claim("g", "c1", 10, two), "order-5@0#9x1");
  EXPECT_EQ(Claim("g", "c2", 10, two), "order-1@0#1x1 order-2@0#3x1 order-3@0#5x1 order-4@0#7x1");
  // c2 leaves the members but still holds order-1..4 in flight: those stay
  // its own until settled; c1 owns the rest.
  const std::vector<std::string> one = {"c1"};
  EXPECT_EQ(Owned(*groups_, "g", "c1", one), "1: order-5");
  EXPECT_EQ(Owned(*groups_, "g", "c2", one), "4: order-1 order-2 order-3 order-4");
  ASSERT_TRUE(groups_->Ack("g", "c2", kHere, {1, 3}).ok());
  EXPECT_EQ(Owned(*groups_, "g", "c1", one), "3: order-1 order-2 order-5");
  EXPECT_EQ(Owned(*groups_, "g", "c3", one), "0: ");
  // ROUND_ROBIN assigns nothing.
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  Create("rr", Category("order"), rr);
  EXPECT_EQ(Owned(*groups_, "rr", "c1", one), "none");
  EXPECT_EQ(Owned(*groups_, "missing", "c1", one),
            "NOT_FOUND: consumer group 'missing' does not exist");
}

TEST_F(ConsumerGroupsTest, EveryDeliveryCountsAndTheLastIsParked) {
  Append("order-1", 2);
  GroupSettingsPatch p;
  p.max_deliveries = 3;
  p.retry_backoff_ms = 0;
  Create("g", Category("order"), p);
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@0#1x1");
  // Its consumer goes away: counted, and back for another.
  ASSERT_TRUE(groups_->Leave("g", "c1", kHere).ok());
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@0#1x2");
  // Not acked in time: counted.
  ExpireLeases("g");
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@0#1x3");
  // A retry after the third delivery parks it instead; order-1's next
  // version is not blocked by it.
  ASSERT_TRUE(groups_->Nack("g", "c1", kHere, {1}, NackAction::kRetry, std::nullopt, "boom").ok());
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@1#2x1");
  auto parked = groups_->ListParked("g", 0, 10);
  ASSERT_TRUE(parked.ok()) << parked.status();
  ASSERT_EQ(parked->size(), 1u);
  EXPECT_EQ((*parked)[0].delivery_id, 1u);
  EXPECT_EQ((*parked)[0].stream_id, "order-1");
  EXPECT_EQ((*parked)[0].event_type, "Happened");
  EXPECT_EQ((*parked)[0].attempts, 3u);
  EXPECT_EQ((*parked)[0].reason,
            "delivered 3 times (max_deliveries) without an ack; the last: nacked: boom");
  // A lease that runs out after the last delivery parks it too.
  ExpireLeases("g");
  ASSERT_TRUE(groups_->Leave("g", "c1", kHere).ok());
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@1#2x2");
  ExpireLeases("g");
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@1#2x3");
  ExpireLeases("g");
  EXPECT_EQ(Claim("g", "c1", 1), "");
  parked = groups_->ListParked("g", 1, 10);
  ASSERT_TRUE(parked.ok());
  ASSERT_EQ(parked->size(), 1u);
  EXPECT_EQ((*parked)[0].reason,
            "delivered 3 times (max_deliveries) without an ack; the last: not acked within "
            "ack_timeout");
  const GroupInfo info = Info("g");
  EXPECT_EQ(info.parked, 2u);
  EXPECT_EQ(info.checkpoint, 2u);  // Parked counts as done.
  EXPECT_EQ(info.delivered, 6u);

  // Replayed: delivered again from attempt 1, in order.
  ParkedSelection all;
  auto replayed = groups_->ReplayParked("g", all);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(*replayed, 2u);
  EXPECT_EQ(Claim("g", "c1", 5), "order-1@0#1x1");
  ASSERT_TRUE(groups_->Nack("g", "c1", kHere, {1}, NackAction::kPark, std::nullopt, "later").ok());
  EXPECT_EQ(Claim("g", "c1", 5), "order-1@1#2x1");
  ASSERT_TRUE(groups_->Nack("g", "c1", kHere, {2}, NackAction::kSkip, std::nullopt, "").ok());
  ParkedSelection other;
  other.ids = {2};
  EXPECT_EQ(groups_->DropParked("g", other).status(),
            absl::NotFoundError("delivery 2 is not parked in group 'g'"));
  other.ids = {1};
  auto dropped = groups_->DropParked("g", other);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(*dropped, 1u);
  EXPECT_EQ(Info("g").parked, 0u);
}

TEST_F(ConsumerGroupsTest, ARetryWaitsItsDelay) {
  Append("order-1", 1);
  Create("g", Category("order"));
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@0#1x1");
  ASSERT_TRUE(groups_->Nack("g", "c1", kHere, {1}, NackAction::kRetry, absl::Hours(1), "x").ok());
  EXPECT_EQ(Claim("g", "c1", 1), "");
  auto due = groups_->NextDue("g");
  ASSERT_TRUE(due.ok());
  ASSERT_TRUE(due->has_value());
  EXPECT_GT(**due, absl::Now() + absl::Minutes(59));
  testing::Exec(dsn_, "UPDATE logbook.consumer_group_pending SET not_before = now()");
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@0#1x2");
}

// A filter matching 1 event in 10,000 still moves the checkpoint, a
// bounded window of positions at a time.
TEST_F(ConsumerGroupsTest, ASparseFilterNeverPinsTheCheckpoint) {
  for (int i = 0; i < 25; ++i) {
    std::vector<NewEvent> events;
    for (int j = 0; j < 1000; ++j) events.push_back(Event("Noise", "{}"));
    ASSERT_TRUE(store_->Append(absl::StrCat("noise-", i), ExpectedVersion::Any(), events).ok());
  }
  Append("order-1", 1, "OrderPlaced");  // At 25,001.
  EventFilter f;
  f.event_types = {"OrderPlaced"};
  Create("g", f);
  auto filled = groups_->Fill("g", 100);
  ASSERT_TRUE(filled.ok());
  EXPECT_TRUE(*filled);
  EXPECT_EQ(Info("g").checkpoint, 25000u);
  EXPECT_EQ(Claim("g", "c1", 1), "order-1@0#25001x1");
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {25001}).ok());
  Append("noise-0", 1);
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Info("g").checkpoint, 25002u);
}

// ROUND_ROBIN hands fresh events out in leases, one row per claim, and
// keeps in memory which of them are settled: a lease goes with its last
// event; a nack makes its event a pending one of its own; what is open when
// the lease runs out or its consumer leaves goes back, counted as one
// delivery; another instance takes back the leases of one that is gone.
TEST_F(ConsumerGroupsTest, RoundRobinLeasesSettleInMemoryAndGoBackWhenDue) {
  Append("order-1", 5);
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  Create("g", Category("order"), rr);
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  auto filled = groups_->Fill("g", 100);
  ASSERT_TRUE(filled.ok()) << filled.status();
  EXPECT_TRUE(*filled);  // Nothing brought in ahead: claims cut leases.
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.consumer_group_pending"), "0");
  EXPECT_EQ(Claim("g", "c1", 3), "order-1@0#1x1 order-1@1#2x1 order-1@2#3x1");
  const std::string leases =
      "SELECT coalesce(string_agg(format('%s-%s:%s', after_position, through_position, events),"
      " ' ' ORDER BY after_position), '') FROM logbook.consumer_group_leases";
  EXPECT_EQ(QueryValue(dsn_, leases), "0-3:3");
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.consumer_group_pending"), "0");
  EXPECT_EQ(Info("g").in_flight, 3u);

  // A nacked event leaves its lease: a pending event, delivered once.
  ASSERT_TRUE(groups_->Nack("g", "c1", kHere, {2}, NackAction::kRetry, absl::ZeroDuration(),
                            "boom").ok());
  EXPECT_EQ(Claim("g", "c1", 3), "order-1@1#2x2");  // Room for one.
  // An ack of something it does not hold changes nothing, in the lease too.
  EXPECT_EQ(groups_->Ack("g", "c1", kHere, {1, 9}),
            absl::FailedPreconditionError(
                "ack: delivery 9 is not held by consumer 'c1' (settled already, or delivered "
                "again after its ack_timeout)"));
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {3, 2}).ok());
  EXPECT_EQ(QueryValue(dsn_, leases), "0-3:3");  // 1 is open.
  EXPECT_EQ(Info("g").checkpoint, 0u);
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {1}).ok());
  GroupInfo info = Info("g");  // Closes the leases acks completed.
  EXPECT_EQ(QueryValue(dsn_, leases), "");
  EXPECT_EQ(info.checkpoint, 3u);
  EXPECT_EQ(info.delivered, 4u);
  EXPECT_EQ(info.acked, 3u);
  EXPECT_EQ(info.in_flight, 0u);
  EXPECT_EQ(info.lag_events, 2u);

  // Its consumer leaves holding a lease: what is open goes back.
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@3#4x1 order-1@4#5x1");
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {5}).ok());
  ASSERT_TRUE(groups_->Leave("g", "c1", kHere).ok());
  EXPECT_EQ(QueryValue(dsn_, leases), "");
  EXPECT_EQ(QueryValue(dsn_, "SELECT string_agg(format('%s:%s:%s', global_position, attempts, "
                             "last_reason), ' ') FROM logbook.consumer_group_pending"),
            "4:1:its consumer went away");
  info = Info("g");
  EXPECT_EQ(info.checkpoint, 3u);
  EXPECT_EQ(info.acked, 4u);
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@3#4x2");
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {4}).ok());
  EXPECT_EQ(Info("g").checkpoint, 5u);

  // Another instance's consumer takes a lease, and that instance is gone:
  // once the lease is past its deadline (here, set back by hand) and the
  // grace after it, a Fill here takes back every event of it.
  Append("order-2", 2);
  {
    StoreOptions options;
    options.dsn = testing::AsRole(dsn_, "logbook_app");
    auto other = ConsumerGroups::Open(options);
    ASSERT_TRUE(other.ok()) << other.status();
    ASSERT_TRUE((*other)->Join("g", "c2", "instance-b/1").ok());
    auto claimed = (*other)->Claim("g", "c2", "instance-b/1", {"c1", "c2"}, 10);
    ASSERT_TRUE(claimed.ok()) << claimed.status();
    EXPECT_EQ(claimed->size(), 2u);
    ASSERT_TRUE((*other)->Ack("g", "c2", "instance-b/1", {6}).ok());  // Known there only.
  }
  EXPECT_EQ(QueryValue(dsn_, leases), "5-7:2");
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(QueryValue(dsn_, leases), "5-7:2");  // Not due yet.
  testing::Exec(dsn_, "UPDATE logbook.consumer_group_leases SET lease_until = now() - interval "
                      "'3 seconds'");
  absl::SleepFor(absl::Seconds(1));  // Fill does ROUND_ROBIN upkeep once a second at most.
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(QueryValue(dsn_, leases), "");
  EXPECT_EQ(Claim("g", "c1", 10), "order-2@0#6x2 order-2@1#7x2");  // 6 again: at-least-once.
  info = Info("g");
  EXPECT_EQ(info.delivered, 11u);  // 3 + 1 + 2 + 1 + 2 + 2.
}

// A ROUND_ROBIN lease that runs out while its consumer is connected goes
// back at that consumer's next claim; a late ack of it is refused.
// A lease's events come from the store Open was given for them, through
// the lease's last position; a store that has fewer of them (here: another,
// empty database) is passed over for the groups' own connection.
TEST_F(ConsumerGroupsTest, LeasedEventsAreReadFromTheStoreGivenForThem) {
  Append("order-1", 3);
  Append("user-1", 1);  // Position 4, not of the target.
  Append("order-2", 1);
  StoreOptions options;
  options.dsn = testing::AsRole(testing::CreateMigratedDatabase(), "logbook_app");
  auto empty = EventStore::Open(options);
  ASSERT_TRUE(empty.ok()) << empty.status();
  absl::Mutex mu;
  std::vector<uint64_t> asked;  // `through` of each lease read.
  EventStore* from = store_.get();
  options.dsn = testing::AsRole(dsn_, "logbook_app");
  auto groups = ConsumerGroups::Open(options, [&](uint64_t through) {
    absl::MutexLock lock(&mu);
    asked.push_back(through);
    return from;
  });
  ASSERT_TRUE(groups.ok()) << groups.status();
  groups_ = *std::move(groups);
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  Create("g", Category("order"), rr);
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  EXPECT_EQ(Claim("g", "c1", 2), "order-1@0#1x1 order-1@1#2x1");
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(asked, std::vector<uint64_t>({2}));
    from = empty->get();
  }
  EXPECT_EQ(Claim("g", "c1", 4), "order-1@2#3x1 order-2@0#5x1");
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(asked, std::vector<uint64_t>({2, 5}));
  }
  groups_.reset();  // Before what its lease_events names.
}

TEST_F(ConsumerGroupsTest, ARoundRobinLeaseThatRunsOutGoesBack) {
  Append("order-1", 2);
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  rr.ack_timeout_ms = 100;
  Create("g", Category("order"), rr);
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@0#1x1 order-1@1#2x1");
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {2}).ok());
  absl::SleepFor(absl::Milliseconds(150));  // Past the deadline.
  auto due = groups_->NextDue("g");
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_TRUE(due->has_value());
  EXPECT_LE(**due, absl::Now());
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@0#1x2");
  EXPECT_EQ(Info("g").acked, 1u);
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_EQ(Claim("g", "c1", 10), "order-1@0#1x3");
}

// ROUND_ROBIN: a sparse filter moves the frontier a window at a time, and
// the checkpoint with it.
TEST_F(ConsumerGroupsTest, ASparseFilterMovesARoundRobinFrontier) {
  for (int i = 0; i < 25; ++i) {
    std::vector<NewEvent> events;
    for (int j = 0; j < 1000; ++j) events.push_back(Event("Noise", "{}"));
    ASSERT_TRUE(store_->Append(absl::StrCat("noise-", i), ExpectedVersion::Any(), events).ok());
  }
  Append("order-1", 1, "OrderPlaced");  // At 25,001.
  Append("noise-0", 1);
  EventFilter f;
  f.event_types = {"OrderPlaced"};
  GroupSettingsPatch rr;
  rr.strategy = GroupStrategy::kRoundRobin;
  Create("g", f, rr);
  ASSERT_TRUE(groups_->Join("g", "c1", kHere).ok());
  EXPECT_EQ(Claim("g", "c1", 5), "order-1@0#25001x1");
  ASSERT_TRUE(groups_->Ack("g", "c1", kHere, {25001}).ok());
  EXPECT_EQ(Info("g").checkpoint, 25002u);  // The lease covered the noise after it.
  Append("noise-1", 1);
  EXPECT_EQ(Claim("g", "c1", 5), "");  // Nothing of the target: no lease, the frontier moves.
  EXPECT_EQ(QueryValue(dsn_, "SELECT count(*) FROM logbook.consumer_group_leases"), "0");
  ASSERT_TRUE(groups_->Fill("g", 100).ok());
  EXPECT_EQ(Info("g").checkpoint, 25003u);
}

// Two tenants' groups of one name: each is known by its key, delivers its
// tenant's events only, and is listed with its tenant's groups.
TEST_F(ConsumerGroupsTest, EachTenantHasGroupsOfItsOwn) {
  Append("order-1", 1);  // Position 1, the default tenant's.
  Writer acme{"ann", "acme"};
  ASSERT_TRUE(store_
                  ->Append("order-1", ExpectedVersion::Any(),
                           {Event("Happened", "{}"), Event("Happened", "{}")}, acme)
                  .ok());  // Positions 2 and 3.
  auto tenants = groups_->Tenants();
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  EXPECT_EQ(absl::StrJoin(*tenants, ","), "acme,default");

  GroupSettingsPatch round_robin;
  round_robin.strategy = GroupStrategy::kRoundRobin;
  Create("emails", EventFilter{});  // PER_STREAM.
  const GroupDefinition d = Create(GroupKey("acme", "emails"), EventFilter{}, round_robin);
  EXPECT_EQ(d.name, "emails");
  EXPECT_EQ(d.tenant, "acme");
  EXPECT_EQ(groups_->Create(GroupKey("acme", "emails"), EventFilter{}, {}, {}).status(),
            absl::AlreadyExistsError("consumer group 'emails' already exists"));

  for (const std::string group : {"acme/emails", "emails"}) {
    ASSERT_TRUE(groups_->Join(group, "c1", kHere).ok());
    ASSERT_TRUE(groups_->Fill(group, 100).ok());
  }
  EXPECT_EQ(Claim("acme/emails", "c1", 10), "order-1@0#2x1 order-1@1#3x1");
  EXPECT_EQ(Claim("emails", "c1", 10), "order-1@0#1x1");
  for (const std::string tenant : {"acme", "default"}) {
    auto listed = groups_->List(tenant);
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].definition.name, "emails");
    EXPECT_EQ((*listed)[0].definition.tenant, tenant);
    EXPECT_EQ((*listed)[0].in_flight, tenant == "acme" ? 2u : 1u);
  }
  EXPECT_TRUE(groups_->Delete("acme/emails").ok());
  EXPECT_EQ(Info("emails").in_flight, 1u);
  EXPECT_EQ(groups_->Get("globex/emails").status(),
            absl::NotFoundError("consumer group 'emails' does not exist"));
}

TEST_F(ConsumerGroupsTest, AnUnknownGroupIsNotFoundEverywhere) {
  const absl::Status missing = absl::NotFoundError("consumer group 'nope' does not exist");
  EXPECT_EQ(groups_->Join("nope", "c1", kHere).status(), missing);
  EXPECT_EQ(groups_->Fill("nope", 10).status(), missing);
  EXPECT_EQ(groups_->Claim("nope", "c1", kHere, {"c1"}, 1).status(), missing);
  EXPECT_EQ(groups_->Ack("nope", "c1", kHere, {1}), missing);
  EXPECT_EQ(groups_->ListParked("nope", 0, 1).status(), missing);
  EXPECT_EQ(groups_->ReplayParked("nope", {}).status(), missing);
  EXPECT_EQ(groups_->Heartbeat("nope", "instance-a", {"c1"}).status(), missing);
}

}  // namespace
}  // namespace logbook::store
