// detr_inspect FILE [--max_items N] [--depth D]: prints what a torch.save file (zip or legacy
// format) holds — nested keys, tensor dtypes and shapes, other values, and unknown classes
// (e.g. argparse.Namespace) with their state — without Python.
// Exit codes: 0 done, 1 unreadable file ("detr_inspect: error: <file>: <what>"), 2 usage.
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "src/checkpoint.h"
#include "src/flags.h"
#include "src/serialization/inspect.h"
#include "src/serialization/torch_save.h"
#include "util/terminal.h"
#include "src/cli/guarded_main.h"

namespace {

struct InspectCommand {
  std::string file;
  detr::serialization::InspectOptions inspect;
};

detr::FlagTable<InspectCommand> flag_table() {
  using C = InspectCommand;
  using I = detr::serialization::InspectOptions;
  detr::FlagTable<C> t("detr_inspect",
                       "Prints the structure of a torch.save file (.pth): keys, tensor dtypes and shapes, values and "
                       "pickled objects.",
                       "FILE");
  t.add_positional("file", "torch.save file", &C::file);
  t.add("", "max_items", "list at most N entries per dict/list (0: all)", &C::inspect, &I::max_items);
  t.add("", "depth", "expand at most D levels", &C::inspect, &I::max_depth);
  t.add("", "values", "show values of tensors with at most N elements", &C::inspect, &I::max_values);
  return t;
}

// The file's structure, then what training and detr_predict make of it (the same reader); every byte
// from the file reaches the terminal escaped.
std::string describe_file(const InspectCommand& c) {
  detr::serialization::LoadInfo info;
  auto value = detr::serialization::torch_load(c.file, &info);
  std::ostringstream text;
  text << c.file << ": ";
  detr::serialization::print_load_info(text, info);
  detr::serialization::print_structure(text, value, c.inspect);
  try {
    const auto ck =
        detr::read_checkpoint(std::make_shared<const detr::serialization::PyValue>(std::move(value)), c.file);
    const auto line = detr::describe(ck);
    text << "as a checkpoint: " << detr::util::terminal_safe(line, /*newlines_escaped=*/true) << "\n";
  } catch (const std::exception& e) {  // one line, whatever the file's strings hold
    text << "as a checkpoint: not usable: " << detr::util::terminal_safe(e.what(), /*newlines_escaped=*/true) << "\n";
  }
  return text.str();
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_inspect", [&]() -> int {
    InspectCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    if (c.file.empty()) throw detr::UsageError("a FILE to inspect is required");
    std::cout << detr::util::terminal_safe(describe_file(c)) << std::flush;
    return 0;
  });
}
