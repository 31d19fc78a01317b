// detr_inspect FILE [--max_items N] [--depth D]: prints what a torch.save file (zip or legacy
// format) holds — nested keys, tensor dtypes and shapes, other values, and unknown classes
// (e.g. argparse.Namespace) with their state — without Python.
// Exit codes: 0 done, 1 unreadable file ("detr_inspect: error: <file>: <what>"), 2 usage.
#include <cxxopts.hpp>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "src/checkpoint.h"
#include "src/serialization/inspect.h"
#include "src/serialization/torch_save.h"
#include "util/terminal.h"
#include "src/cli/guarded_main.h"

int main(int argc, char** argv) {
  cxxopts::Options options("detr_inspect",
                           "Prints the structure of a torch.save file (.pth): keys, tensor "
                           "dtypes and shapes, values and pickled objects.");
  options.positional_help("FILE");
  options.add_options()("file", "torch.save file", cxxopts::value<std::string>())(
      "max_items", "list at most N entries per dict/list (0: all)", cxxopts::value<size_t>()->default_value("0"))(
      "depth", "expand at most D levels", cxxopts::value<size_t>()->default_value("64"))(
      "values", "show values of tensors with at most N elements", cxxopts::value<size_t>()->default_value("8"))(
      "h,help", "print this help");
  options.parse_positional({"file"});
  return detr::guarded_main("detr_inspect", [&]() -> int {
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << std::endl;
      return 0;
    }
    if (!args.unmatched().empty())
      throw cxxopts::exceptions::exception("unexpected argument '" + args.unmatched().front() + "'");
    if (!args.count("file")) throw cxxopts::exceptions::exception("a FILE to inspect is required");

    detr::serialization::InspectOptions io;
    io.max_items = args["max_items"].as<size_t>();
    io.max_depth = args["depth"].as<size_t>();
    io.max_values = args["values"].as<size_t>();
    const std::string file = args["file"].as<std::string>();
    detr::serialization::LoadInfo info;
    auto value = detr::serialization::torch_load(file, &info);
    std::ostringstream text;  // every byte from the file reaches the terminal escaped
    text << file << ": ";
    detr::serialization::print_load_info(text, info);
    detr::serialization::print_structure(text, value, io);
    try {  // what training and detr_predict make of it (the same reader)
      const auto ck = detr::read_checkpoint(std::make_shared<const detr::serialization::PyValue>(std::move(value)), file);
      const auto line = detr::describe(ck);
      text << "as a checkpoint: " << detr::util::terminal_safe(line, /*newlines_escaped=*/true) << "\n";
    } catch (const std::exception& e) {  // one line, whatever the file's strings hold
      text << "as a checkpoint: not usable: " << detr::util::terminal_safe(e.what(), /*newlines_escaped=*/true) << "\n";
    }
    std::cout << detr::util::terminal_safe(text.str()) << std::flush;
    return 0;
    });
}
