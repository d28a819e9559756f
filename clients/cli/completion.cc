#include "completion.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace logbook::cli {
namespace {

struct Node {
  std::string path;  // "" for the program, "/group/create" for `group create`.
  std::set<std::string> words;
};

// Adds `app` (at `path`, taking `inherited` options from above) and every
// command under it to `out`, parents first.
void Walk(const CLI::App& app, const std::string& path, std::set<std::string> inherited,
          std::vector<Node>& out) {
  for (const CLI::Option* o : app.get_options([](const CLI::Option*) { return true; })) {
    for (const std::string& name : o->get_lnames()) inherited.insert("--" + name);
  }
  Node node{path, inherited};
  const std::vector<const CLI::App*> subs =
      app.get_subcommands([](const CLI::App*) { return true; });
  for (const CLI::App* sub : subs) node.words.insert(sub->get_name());
  out.push_back(std::move(node));
  for (const CLI::App* sub : subs) {
    Walk(*sub, absl::StrCat(path, "/", sub->get_name()), inherited, out);
  }
}

}  // namespace

std::string BashCompletion(const CLI::App& app, const std::string& program) {
  std::vector<Node> nodes;
  Walk(app, "", {}, nodes);
  std::vector<std::string> paths;
  for (const Node& n : nodes) {
    if (!n.path.empty()) paths.push_back(n.path);
  }
  const std::string fn = absl::StrCat("_", program, "_complete");
  std::string out = absl::StrCat(
      "# bash completion for ", program, ", made by `", program, " completion bash`\n", fn,
      "() {\n", "  local cur=${COMP_WORDS[COMP_CWORD]} path=\"\" words i\n",
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n", "    case \"$path/${COMP_WORDS[i]}\" in\n",
      "      ", absl::StrJoin(paths, "|"), ") path=\"$path/${COMP_WORDS[i]}\" ;;\n", "    esac\n",
      "  done\n", "  case \"$path\" in\n");
  for (const Node& n : nodes) {
    absl::StrAppend(&out, "    \"", n.path, "\") words=\"", absl::StrJoin(n.words, " "), "\" ;;\n");
  }
  absl::StrAppend(&out, "  esac\n", "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n", "}\n",
                  "complete -F ", fn, " ", program, "\n");
  return out;
}

}  // namespace logbook::cli
