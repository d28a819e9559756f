// Test support: the real logbookd binary ($LOGBOOKD) as a child process.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace logbook::testing {

// Appends the "answering CODE: message" lines of logbookd log `log` (every
// error a client got) to the file $LOGBOOK_TEST_CLIENT_ERRORS names, if it
// is set; client_errors_test checks them all once the suite ran.
void CollectClientErrors(const std::string& log);

// A logbookd child process serving `dsn` on a port it picks itself (known,
// with channel(), once WaitServing() returned true); its stderr goes to a log
// file, at debug level (/tmp/logbookd-test-PID-N.log, removed on
// destruction unless LOGBOOK_KEEP_LOGS is set). Stops it with SIGTERM on
// destruction and collects its client errors (CollectClientErrors). Not
// thread-safe.
class Logbookd {
 public:
  // `port` 0: the server picks one.
  explicit Logbookd(const std::string& dsn, std::vector<std::string> extra_args = {},
                    int port = 0);
  ~Logbookd();

  // Waits for the start-up log line, then until the health service says
  // SERVING; false if the process died first.
  bool WaitServing();
  // SIGTERM, then waits; returns the exit code (128 + signal if killed).
  int Stop();
  // SIGKILL, then waits.
  void Kill();

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const;
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // A new channel of its own (a separate HTTP/2 connection).
  std::shared_ptr<grpc::Channel> NewChannel() const;
  // From /proc: resident memory in KiB and thread count.
  long RssKib() const;
  long Threads() const;

 private:
  bool Exited();
  int Wait();

  int port_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace logbook::testing
