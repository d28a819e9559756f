#include "completion.h"

#include <gtest/gtest.h>

#include <string>

namespace logbook::cli {
namespace {

// A small command tree: the script offers each command's subcommands and
// long options, the options of the commands above it included.
TEST(BashCompletionTest, OffersEachCommandsSubcommandsAndOptionsWithThoseAboveIt) {
  CLI::App app{"tool"};
  app.set_help_flag("--help", "help");
  std::string address, name, strategy;
  app.add_option("--address", address, "where");
  CLI::App* group = app.add_subcommand("group", "groups");
  CLI::App* create = group->add_subcommand("create", "make one");
  create->add_option("name", name, "positional: not offered");
  create->add_option("-s,--strategy", strategy, "how");
  app.add_subcommand("read", "read");

  EXPECT_EQ(BashCompletion(app, "tool"),
            "# bash completion for tool, made by `tool completion bash`\n"
            "_tool_complete() {\n"
            "  local cur=${COMP_WORDS[COMP_CWORD]} path=\"\" words i\n"
            "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
            "    case \"$path/${COMP_WORDS[i]}\" in\n"
            "      /group|/group/create|/read) path=\"$path/${COMP_WORDS[i]}\" ;;\n"
            "    esac\n"
            "  done\n"
            "  case \"$path\" in\n"
            "    \"\") words=\"--address --help group read\" ;;\n"
            "    \"/group\") words=\"--address --help create\" ;;\n"
            "    \"/group/create\") words=\"--address --help --strategy\" ;;\n"
            "    \"/read\") words=\"--address --help\" ;;\n"
            "  esac\n"
            "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
            "}\n"
            "complete -F _tool_complete tool\n");
}

}  // namespace
}  // namespace logbook::cli
