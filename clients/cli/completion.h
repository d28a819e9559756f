// Shell completion for the `logbook` command, made from its own command
// tree, so that it offers exactly the commands and options the parser
// accepts.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace logbook::cli {

// A bash completion script for `program`: after the commands typed so far,
// TAB offers their subcommands and long options, with the options of the
// commands above them (the parser takes those anywhere after them). Pure.
std::string BashCompletion(const CLI::App& app, const std::string& program);

}  // namespace logbook::cli
