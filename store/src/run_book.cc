#include "run_book.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace logbook::store {

void RunBook::Add(int64_t key, const GroupDelivery& first, absl::Time deadline,
                  absl::Time row_until, std::vector<RecordedEvent> rest) {
  Run& run = runs_[key];
  run.rest.assign(std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  run.out = first.event.global_position;
  run.attempt = first.attempt;
  run.deadline = deadline;
  run.row_until = row_until;
  out_[run.out] = key;
}

RunBook::Acked RunBook::Ack(const std::vector<uint64_t>& positions) {
  Acked result;
  for (uint64_t p : positions) {
    auto at = out_.find(p);
    if (at == out_.end()) continue;
    auto it = runs_.find(at->second);
    out_.erase(at);
    ++result.acked;
    Run& run = it->second;
    run.out = 0;
    if (!run.rest.empty() && !run.truncated) continue;  // Its next is ready.
    Ended ended;
    ended.key = it->first;
    if (!run.rest.empty()) {
      ended.rest_from = run.rest.front().global_position;
      ended.rest_events = static_cast<uint32_t>(run.rest.size());
    }
    result.ended.push_back(ended);
    runs_.erase(it);
  }
  return result;
}

std::vector<GroupDelivery> RunBook::TakeReady(absl::Time now, absl::Duration ack_timeout) {
  std::vector<GroupDelivery> out;
  for (auto& [key, run] : runs_) {
    if (run.out != 0 || run.rest.empty()) continue;
    if (run.row_until < now + ack_timeout + kRowMargin) continue;  // Renew first.
    GroupDelivery& d = out.emplace_back();
    d.event = std::move(run.rest.front());
    d.attempt = 1;
    run.rest.pop_front();
    run.out = d.event.global_position;
    run.attempt = 1;
    run.deadline = now + ack_timeout;
    out_[run.out] = key;
  }
  std::sort(out.begin(), out.end(), [](const GroupDelivery& a, const GroupDelivery& b) {
    return a.event.global_position < b.event.global_position;
  });
  return out;
}

RunBook::Split RunBook::SplitRun(std::map<int64_t, Run>::iterator it) {
  Run& run = it->second;
  Split s;
  s.key = it->first;
  if (run.out != 0) {
    out_.erase(run.out);
    s.position = run.out;
    s.attempts = run.attempt;
    s.deadline = run.deadline;
  } else {  // Ready, not sent: it leaves undelivered.
    s.position = run.rest.front().global_position;
    s.deadline = absl::InfinitePast();
    run.rest.pop_front();
  }
  if (!run.rest.empty()) {
    s.rest_from = run.rest.front().global_position;
    s.rest_events = static_cast<uint32_t>(run.rest.size());
  }
  runs_.erase(it);
  return s;
}

std::vector<RunBook::Split> RunBook::SplitAt(const std::vector<uint64_t>& positions) {
  std::vector<Split> out;
  for (uint64_t p : positions) {
    auto at = out_.find(p);
    if (at == out_.end()) continue;
    out.push_back(SplitRun(runs_.find(at->second)));
  }
  return out;
}

std::vector<RunBook::Split> RunBook::Expire(absl::Time now) {
  std::vector<Split> out;
  for (auto it = runs_.begin(); it != runs_.end();) {
    auto next = std::next(it);
    if (it->second.out != 0 && it->second.deadline <= now) out.push_back(SplitRun(it));
    it = next;
  }
  return out;
}

std::vector<RunBook::Split> RunBook::TakeAll() {
  std::vector<Split> out;
  while (!runs_.empty()) out.push_back(SplitRun(runs_.begin()));
  return out;
}

void RunBook::Truncate() {
  for (auto& [key, run] : runs_) run.truncated = true;
}

std::vector<int64_t> RunBook::ToRenew(absl::Time now, absl::Duration ack_timeout) const {
  std::vector<int64_t> keys;
  for (const auto& [key, run] : runs_) {
    if (run.row_until < now + ack_timeout + kRenewAhead) keys.push_back(key);
  }
  return keys;
}

void RunBook::Renewed(const std::vector<int64_t>& asked, const std::vector<int64_t>& renewed,
                      absl::Time until) {
  for (int64_t key : asked) {
    auto it = runs_.find(key);
    if (it == runs_.end()) continue;
    if (std::find(renewed.begin(), renewed.end(), key) != renewed.end()) {
      it->second.row_until = until;
    } else {
      if (it->second.out != 0) out_.erase(it->second.out);
      runs_.erase(it);
    }
  }
}

std::optional<absl::Time> RunBook::NextDue(absl::Duration ack_timeout) const {
  std::optional<absl::Time> due;
  auto consider = [&](absl::Time t) {
    if (!due || t < *due) due = t;
  };
  for (const auto& [key, run] : runs_) {
    if (run.out != 0) {
      consider(run.deadline);
    } else if (!run.rest.empty()) {
      consider(absl::InfinitePast());
    }
    consider(run.row_until - ack_timeout - kRenewAhead);
  }
  return due;
}

}  // namespace logbook::store
