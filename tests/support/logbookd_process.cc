#include "logbookd_process.h"

#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"

namespace logbook::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

long ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
  }
  return -1;
}

}  // namespace

void CollectClientErrors(const std::string& log) {
  const char* collected = std::getenv("LOGBOOK_TEST_CLIENT_ERRORS");
  if (collected == nullptr) return;
  std::ifstream in(log);
  std::string lines, line;
  while (std::getline(in, line)) {
    if (line.find("] answering ") != std::string::npos) lines += line + "\n";
  }
  // One O_APPEND write: tests running at once do not interleave lines.
  const int fd = open(collected, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  if (write(fd, lines.data(), lines.size()) < 0) perror("CollectClientErrors");
  close(fd);
}

Logbookd::Logbookd(const std::string& dsn, std::vector<std::string> extra_args, int port)
    : port_(0) {
  static int counter = 0;
  log_ = "/tmp/logbookd-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) +
         ".log";
  // Debug: the log then has every error message clients got (~Logbookd
  // collects them).
  std::vector<std::string> args = {"logbookd", "--listen", "127.0.0.1:" + std::to_string(port),
                                   "--database", dsn};
  if (std::find(extra_args.begin(), extra_args.end(), "--log-level") == extra_args.end()) {
    args.insert(args.end(), {"--log-level", "debug"});
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // Never outlive a test that died.
    if (freopen(log_.c_str(), "w", stderr) == nullptr) _exit(126);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(std::getenv("LOGBOOKD"), argv.data());
    _exit(127);
  }
}

Logbookd::~Logbookd() {
  Stop();
  CollectClientErrors(log_);
  if (getenv("LOGBOOK_KEEP_LOGS") == nullptr) unlink(log_.c_str());
}

std::shared_ptr<grpc::Channel> Logbookd::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetInt("logbook.test.channel", rand());  // Distinct args: no subchannel sharing.
  return grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args);
}

bool Logbookd::WaitServing() {
  // The server picks its port; the start-up line says which.
  const std::string marker = "listening on 127.0.0.1:";
  for (int i = 0; i < 400 && port_ == 0; ++i) {
    const std::string text = log();
    if (auto at = text.find(marker); at != std::string::npos) {
      port_ = std::atoi(text.c_str() + at + marker.size());
      break;
    }
    if (Exited()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (port_ == 0) return false;
  channel_ = NewChannel();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  return health->Check(&ctx, req, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

int Logbookd::Wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

int Logbookd::Stop() {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, SIGTERM);
  return Wait();
}

void Logbookd::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Wait();
}

bool Logbookd::Exited() {
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
    return true;
  }
  return false;
}

std::string Logbookd::log() const { return ReadFile(log_); }
long Logbookd::RssKib() const { return ProcStatus(pid_, "VmRSS"); }
long Logbookd::Threads() const { return ProcStatus(pid_, "Threads"); }

}  // namespace logbook::testing
