// Appends, reads and subscribes: quickstart [HOST:PORT]
#include <unistd.h>
#include <iostream>
#include "logbook/client/client.h"
using namespace logbook;

int main(int argc, char** argv) {
  ClientOptions options;
  if (argc > 1) options.address = argv[1];
  Client lb(options);
  const std::string stream = "order-" + std::to_string(getpid());
  v1::EventData placed, paid;
  placed.set_type("OrderPlaced"), placed.set_data(R"({"total": 30})");
  paid.set_type("OrderPaid"), paid.set_data(R"({"amount": 30})");
  auto r = lb.Append(stream, expect::NoStream(), {placed});
  if (!r.ok() || !lb.Append(stream, expect::Exact(r->last_version()), {paid}).ok()) return 1;
  std::cout << "appended " << stream << "@0 at position " << r->first_position() << "\n";
  v1::ReadStreamRequest read;
  read.set_stream_id(stream);
  auto events = lb.ReadStream(read);
  for (const v1::RecordedEvent& e : events.value())
    std::cout << "read " << e.stream_version() << " " << e.type() << " " << e.data() << "\n";
  v1::SubscribeRequest subscribe;  // History, then live.
  subscribe.set_stream_id(stream);
  return lb.Subscribe(subscribe, [](const v1::SubscribeResponse& m) {
    if (!m.has_event()) return true;  // caught_up, checkpoints.
    std::cout << "got " << m.event().global_position() << " " << m.event().type() << "\n";
    return m.event().type() != "OrderPaid";  // false: stop.
  })->Wait().ok() ? 0 : 1;
}
