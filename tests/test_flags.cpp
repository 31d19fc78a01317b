// Every tool's command line through its flag table: the run flags with one help text wherever they
// appear, every bad command line one usage error (exit 2), --help_markdown for docs/flags.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "src/flags.h"
#include "tests/support.h"

namespace {

const std::string kTools = DETR_TOOLS_DIR;

struct Tool {
  const char* name;
  std::vector<std::string> run_flags;  // the shared run flags it takes
  const char* bad_value;               // a flag with a value it refuses
};

const std::vector<Tool>& tools() {
  static const std::vector<Tool> all = {
      {"detr_train", {"device", "num_threads", "conv_algorithm", "amp"}, "--coco_path /d --amp fp8"},
      {"detr_bench", {"device", "num_threads", "conv_algorithm", "amp"}, "--conv_algorithm fast"},
      {"detr_predict", {"device", "num_threads", "conv_algorithm", "amp"}, "--checkpoint c --input i --device tpu"},
      {"detr_parity", {"num_threads", "conv_algorithm"}, "some_dir --conv_algorithm fast"},
      {"detr_eval", {}, "--gt g --dt d --iou_type keypoints"},
      {"detr_inspect", {}, "file.pth --depth -1"},
      {"detr_make_dataset", {}, "--out o --images 3x"},
      {"detr_resize", {}, "in.png out.png --size big"},
      {"detr_bench_coco_eval", {}, "--images many"},
  };
  return all;
}

std::string shared_help(const std::string& flag) {
  namespace r = detr::run_flags;
  if (flag == r::kDevice.name) return r::kDevice.help;
  if (flag == r::kNumThreads.name) return r::kNumThreads.help;
  if (flag == r::kConvAlgorithm.name) return r::kConvAlgorithm.help;
  if (flag == r::kAmp.name) return r::kAmp.help;
  ADD_FAILURE() << "not a run flag: " << flag;
  return "";
}

detr::testing::CommandResult run(const Tool& tool, const std::string& args) {
  return detr::testing::run_command(kTools + "/" + tool.name + " " + args);
}

// Lines of `text`, without the last newline.
std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace

TEST(Flags, EveryToolListsTheRunFlagsWithOneHelpText) {
  for (const auto& tool : tools()) {
    const auto help = run(tool, "--help");
    ASSERT_EQ(help.code, 0) << tool.name << "\n" << help.output;
    EXPECT_NE(help.output.find("--help_markdown"), std::string::npos) << tool.name;
    const auto md = run(tool, "--help_markdown");
    ASSERT_EQ(md.code, 0) << tool.name << "\n" << md.output;
    EXPECT_EQ(md.output.rfind(std::string("## ") + tool.name + "\n", 0), 0u) << md.output;
    for (const auto& flag : {"device", "num_threads", "conv_algorithm", "amp"}) {
      const bool takes = std::find(tool.run_flags.begin(), tool.run_flags.end(), flag) != tool.run_flags.end();
      const bool listed = help.output.find(std::string("--") + flag + " ") != std::string::npos;
      EXPECT_EQ(listed, takes) << tool.name << " --" << flag << "\n" << help.output;
      if (!takes) continue;
      // The row's help cell is the shared text, word for word.
      const std::string row_start = std::string("| `--") + flag + "` | ";
      const auto at = md.output.find(row_start);
      ASSERT_NE(at, std::string::npos) << tool.name << " --" << flag << "\n" << md.output;
      const auto row = md.output.substr(at, md.output.find('\n', at) - at);
      std::string cell;  // Markdown escapes '|'
      for (char c : shared_help(flag)) cell += c == '|' ? std::string("\\|") : std::string(1, c);
      EXPECT_EQ(row.substr(row.size() - std::min(row.size(), cell.size() + 2)), cell + " |") << row;
    }
  }
}

TEST(Flags, EveryBadCommandLineIsOneUsageErrorWithExitCode2) {
  for (const auto& tool : tools()) {
    for (const std::string& args : {std::string("--bogus_flag 1"), std::string(tool.bad_value)}) {
      const auto r = run(tool, args);
      EXPECT_EQ(r.code, 2) << tool.name << " " << args << "\n" << r.output;
      const auto out = lines(r.output);
      ASSERT_EQ(out.size(), 2u) << tool.name << " " << args << "\n" << r.output;
      EXPECT_EQ(out[0].rfind(std::string(tool.name) + ": ", 0), 0u) << out[0];
      EXPECT_EQ(out[1], std::string("Try '") + tool.name + " --help'.");
      // The message names the offending flag or value.
      const std::string offending = args.substr(args.rfind(' ') + 1);
      const std::string flag =
          args.substr(args.rfind("--") + 2, args.find(' ', args.rfind("--")) - args.rfind("--") - 2);
      EXPECT_TRUE(out[0].find(offending) != std::string::npos || out[0].find(flag) != std::string::npos) << out[0];
    }
  }
}

namespace {

struct Demo {
  std::string file;
  std::vector<std::string> dirs;
  uint64_t seed = 7;
  std::string note = "a|b";
};

detr::FlagTable<Demo> demo_table() {
  detr::FlagTable<Demo> t("demo", "A demo.", "FILE DIR...");
  t.add_positional("file", "the file", &Demo::file);
  t.add_positional("dirs", "the folders", &Demo::dirs);
  t.add("", "seed", "random seed", &Demo::seed);
  t.add("", "note", "pipes | escaped", &Demo::note);
  return t;
}

Demo parse(std::vector<const char*> args) {
  args.insert(args.begin(), "demo");
  Demo d;
  const auto line = demo_table().parse(static_cast<int>(args.size()), args.data(), d);
  EXPECT_TRUE(line.print.empty());
  return d;
}

}  // namespace

TEST(Flags, PositionalArgumentsUnsignedValuesAndMarkdown) {
  const auto d = parse({"f.pth", "a", "b", "--seed", "18446744073709551615"});
  EXPECT_EQ(d.file, "f.pth");
  EXPECT_EQ(d.dirs, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(d.seed, 18446744073709551615ull);
  for (const auto& bad : std::vector<std::vector<const char*>>{{"--seed", "-1"}, {"--seed", "1e3"}, {"--nope"}}) {
    try {
      parse(bad);
      ADD_FAILURE() << bad[0] << " was accepted";
    } catch (const detr::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(bad.back() + (bad.back()[0] == '-' && bad.back()[1] == '-' ? 2 : 0)),
                std::string::npos)
          << e.what();
    }
  }
  const char* help_argv[] = {"demo", "--help_markdown"};
  Demo untouched;
  const auto md = demo_table().parse(2, help_argv, untouched).print;
  EXPECT_EQ(md.rfind("## demo\n\nA demo.\n\n| flag | default | help |\n|---|---|---|\n", 0), 0u) << md;
  EXPECT_NE(md.find("| `--seed` | `7` | random seed |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `--note` | `a\\|b` | pipes \\| escaped |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `--file (or by position)` |  | the file |"), std::string::npos) << md;
}
