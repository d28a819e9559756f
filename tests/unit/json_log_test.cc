// --log-format json: every line is one JSON object with the time in UTC,
// the level, the logger and the message, however the message is made.
#include "json_log.h"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace logbook::service {
namespace {

TEST(JsonLog, EachLineIsAnObjectWithTheMessageEscaped) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("logbookd", sink);
  logger.set_formatter(JsonLogFormatter());
  logger.info("listening on {}:{}", "127.0.0.1", 50051);
  logger.warn("say \"hi\"\nthen\ttab \x01 and \\ done");
  logger.error(std::string("bad utf-8: \xff end"));

  std::vector<nlohmann::json> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) {
    lines.push_back(nlohmann::json::parse(line));  // Throws, failing the test, if not JSON.
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["message"], "listening on 127.0.0.1:50051");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[0]["logger"], "logbookd");
  EXPECT_TRUE(std::regex_match(lines[0]["time"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
      << lines[0]["time"];
  EXPECT_EQ(lines[1]["level"], "warning");
  EXPECT_EQ(lines[1]["message"], "say \"hi\"\nthen\ttab \x01 and \\ done");
  EXPECT_EQ(lines[2]["level"], "error");
  EXPECT_EQ(lines[2]["message"], "bad utf-8: \xef\xbf\xbd end");  // U+FFFD.
  EXPECT_EQ(lines[0].size(), 4u);
}

}  // namespace
}  // namespace logbook::service
