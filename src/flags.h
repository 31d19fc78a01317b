// Command-line flags declared once: each row names the flag, its help group and text, and the field
// it sets. The table makes the parser (cxxopts), --help with defaults taken from a default-constructed
// struct, --help_markdown (docs/flags.md), the copy into the struct and the JSON record of a run
// (checkpoint['args'], config.json). Every tool reads its command line through one. Enumerations are
// parsed to their enum here, at the boundary (each enum's parse and print live beside the enum), and
// every bad command line becomes one UsageError naming the flag and the value.
//
//   FlagTable<TrainArgs> t("detr_train", "Trains DETR ...");
//   t.add("upstream", "lr", "learning rate", &TrainArgs::lr);
//   t.add("upstream", "hidden_dim", "transformer width", &TrainArgs::model, &models::ModelConfig::hidden_dim);
//   t.add("detr-cpp", run_flags::kDevice, &TrainArgs::device);  // a run flag: name and help shared
#pragma once
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/coco_eval.h"
#include "datasets/cvat_policy.h"
#include "datasets/formats/detect.h"
#include "models/model_config.h"
#include "models/winograd_conv.h"
#include "src/amp.h"
#include "src/run_context.h"
#include "src/usage_error.h"

namespace detr {

// How each field type reads from and prints to text, and records as JSON. parse throws
// std::invalid_argument (the table adds the flag's name).
namespace flag_codec {
void parse(const std::string& s, int64_t& v);
void parse(const std::string& s, uint64_t& v);
void parse(const std::string& s, double& v);
void parse(const std::string& s, std::string& v);
void parse(const std::string& s, std::vector<int64_t>& v);  // "480,512,544"; empty: none
void parse(const std::string& s, Precision& v);
void parse(const std::string& s, models::ConvAlgorithm& v);
void parse(const std::string& s, models::PositionEmbedding& v);
void parse(const std::string& s, DistBackend& v);
void parse(const std::string& s, std::optional<torch::Device>& v);
void parse(const std::string& s, std::optional<datasets::formats::DatasetFormat>& v);  // "auto": none
void parse(const std::string& s, datasets::IouType& v);
void parse(const std::string& s, datasets::CrowdPolicy& v);
std::string text(int64_t v);
std::string text(uint64_t v);
std::string text(double v);
std::string text(const std::string& v);
std::string text(const std::vector<int64_t>& v);
std::string text(Precision v);
std::string text(models::ConvAlgorithm v);
std::string text(models::PositionEmbedding v);
std::string text(DistBackend v);
std::string text(const std::optional<torch::Device>& v);
std::string text(const std::optional<datasets::formats::DatasetFormat>& v);
std::string text(datasets::IouType v);
std::string text(datasets::CrowdPolicy v);
template <class T>
nlohmann::json json(const T& v) {
  if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<int64_t>>)
    return v;
  else
    return text(v);
}
}  // namespace flag_codec

// A flag several tools take: one name and one help text wherever it appears. T is its field's type.
template <class T>
struct SharedFlag {
  const char* name;
  const char* help;
};

// The run flags: where and how a tool computes.
namespace run_flags {
inline constexpr SharedFlag<std::optional<torch::Device>> kDevice{"device",
                                                                  "auto|cpu|cuda|cuda:N (auto: CUDA when available)"};
inline constexpr SharedFlag<int64_t> kNumThreads{
    "num_threads",
    "intra-op CPU threads (0: every usable core; in a distributed job the launcher's OMP_NUM_THREADS, else "
    "this process's share of the usable cores)"};
inline constexpr SharedFlag<models::ConvAlgorithm> kConvAlgorithm{
    "conv_algorithm",
    "CPU 3x3 convolutions: winograd (oneDNN's Winograd kernels where the CPU has them; about 2.5x faster, "
    "float32-rounding differences) or direct (LibTorch's kernels, as upstream)"};
inline constexpr SharedFlag<Precision> kAmp{
    "amp",
    "mixed precision: off (float32, upstream's arithmetic), bf16 (autocast), fp16 (autocast + dynamic loss "
    "scaling, CUDA)"};
}  // namespace run_flags

// A parsed command line: `print` is non-empty when --help or --help_markdown asked for text instead of
// a run; `given` tells which flags were on it.
struct CommandLine {
  std::string print;
  std::set<std::string> given;  // the flags on the command line, by name
};

// A flag table as Markdown: "## program", its description, then | flag | default | help | rows.
std::string markdown_table(const std::string& program,
                           const std::string& description,
                           const std::vector<std::vector<std::string>>& rows);

template <class Args>
class FlagTable {
 public:
  // `positional_help` names the positional arguments in the usage line ("FILE", "DIR [DIR...]").
  FlagTable(std::string program, std::string description, std::string positional_help = "")
      : program_(std::move(program)),
        description_(std::move(description)),
        positional_help_(std::move(positional_help)) {}

  // A flag with a value.
  template <class T>
  void add(const char* group, const char* name, const char* help, T Args::*field) {
    add_value<T>(group, name, help, [field](Args& a) -> T& { return a.*field; });
  }
  // A flag whose value lives in a member struct (TrainArgs::model).
  template <class M, class T>
  void add(const char* group, const char* name, const char* help, M Args::*outer, T M::*field) {
    add_value<T>(group, name, help, [outer, field](Args& a) -> T& { return (a.*outer).*field; });
  }
  // A shared flag (run_flags): its name and help text come with it.
  template <class T>
  void add(const char* group, const SharedFlag<T>& flag, T Args::*field) {
    add(group, flag.name, flag.help, field);
  }
  template <class M, class T>
  void add(const char* group, const SharedFlag<T>& flag, M Args::*outer, T M::*field) {
    add(group, flag.name, flag.help, outer, field);
  }
  // A switch: present sets the field to `when_given` (--no_aux_loss sets aux_loss false). Recorded
  // under `json_name` (upstream's argparse dest), default: the flag's name.
  void add_switch(const char* group,
                  const char* name,
                  const char* help,
                  std::function<bool&(Args&)> field,
                  bool when_given = true,
                  const char* json_name = nullptr) {
    const std::string key = json_name ? json_name : name;
    Row row{group, name, help};
    row.read = [=](const cxxopts::ParseResult& r, Args& a) {
      if (r.count(name)) field(a) = when_given;
    };
    row.write = [=](const Args& a, nlohmann::json& j) { j[key] = field(const_cast<Args&>(a)); };
    rows_.push_back(std::move(row));
  }
  // Accepted for upstream's command lines, without effect (not recorded): a switch, or with
  // `takes_value` a flag with an argument.
  void add_unused(const char* group, const char* name, const char* help, bool takes_value = false) {
    Row row{group, name, help};
    row.takes_value = takes_value;
    rows_.push_back(std::move(row));
  }
  // An argument by position (FILE), also accepted as --name; positions are taken in declaration order.
  void add_positional(const char* name, const char* help, std::string Args::*field) {
    Row row{"", name, help};
    row.takes_value = row.positional = true;
    row.read = [field, flag = std::string(name)](const cxxopts::ParseResult& r, Args& a) {
      if (r.count(flag)) a.*field = r[flag].as<std::string>();
    };
    rows_.push_back(std::move(row));
  }
  // Every remaining argument (DIR [DIR...]).
  void add_positional(const char* name, const char* help, std::vector<std::string> Args::*field) {
    Row row{"", name, help};
    row.takes_value = row.positional = row.many = true;
    row.read = [field, flag = std::string(name)](const cxxopts::ParseResult& r, Args& a) {
      if (r.count(flag)) a.*field = r[flag].as<std::vector<std::string>>();
    };
    rows_.push_back(std::move(row));
  }

  // Reads the command line into `out` (fields not on it keep their values). With --help or
  // --help_markdown, returns the text to print and leaves `out` alone. Throws UsageError.
  CommandLine parse(int argc, const char* const* argv, Args& out) const {
    auto o = options();
    CommandLine c;
    try {
      const auto r = o.parse(argc, argv);  // refers to `o`: read here, not kept
      if (!r.unmatched().empty()) throw UsageError("unexpected argument '" + r.unmatched().front() + "'");
      for (const auto& row : rows_)
        if (r.count(row.name)) c.given.insert(row.name);
      if (r.count("help"))
        c.print = o.help(groups());
      else if (r.count("help_markdown"))
        c.print = markdown();
      else
        read(r, out);
    } catch (const cxxopts::exceptions::exception& e) {
      throw UsageError(e.what());
    }
    return c;
  }
  cxxopts::Options options() const {
    cxxopts::Options o(program_, description_);
    const Args defaults{};
    std::vector<std::string> positional;
    for (const auto& row : rows_) {
      const std::string default_text = row.default_text ? row.default_text(defaults) : "";
      if (row.many)
        o.add_option(row.group, {row.name, row.help, cxxopts::value<std::vector<std::string>>()});
      else if (!default_text.empty())
        o.add_option(row.group, {row.name, row.help, cxxopts::value<std::string>()->default_value(default_text)});
      else if (row.takes_value)
        o.add_option(row.group, {row.name, row.help, cxxopts::value<std::string>()});
      else
        o.add_option(row.group, {row.name, row.help});
      if (row.positional) positional.push_back(row.name);
    }
    o.add_option("", {"h,help", "print this help"});
    o.add_option("", {"help_markdown", "print the flags as a Markdown table (docs/flags.md)"});
    if (!positional.empty()) o.parse_positional(positional);
    if (!positional_help_.empty()) o.positional_help(positional_help_);
    return o;
  }
  std::vector<std::string> groups() const {
    std::vector<std::string> g;
    for (const auto& row : rows_)
      if (std::find(g.begin(), g.end(), row.group) == g.end()) g.push_back(row.group);
    if (std::find(g.begin(), g.end(), "") == g.end()) g.emplace_back();  // --help
    return g;
  }
  // One row per flag: flag, default, help (docs/flags.md).
  std::string markdown() const {
    const Args defaults{};
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : rows_) {
      const std::string flag = "--" + row.name + (row.positional ? " (or by position)" : "");
      rows.push_back({flag, row.default_text ? row.default_text(defaults) : "", row.help});
    }
    rows.push_back({"--help", "", "print this help"});
    rows.push_back({"--help_markdown", "", "print the flags as a Markdown table (docs/flags.md)"});
    return markdown_table(program_, description_, rows);
  }
  void read(const cxxopts::ParseResult& r, Args& a) const {
    for (const auto& row : rows_)
      if (row.read) row.read(r, a);
  }
  nlohmann::json to_json(const Args& a) const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& row : rows_)
      if (row.write) row.write(a, j);
    return j;
  }

 private:
  struct Row {
    std::string group, name, help;
    std::function<std::string(const Args&)> default_text;  // null: a switch or a positional argument
    std::function<void(const cxxopts::ParseResult&, Args&)> read;
    std::function<void(const Args&, nlohmann::json&)> write;
    bool takes_value = false;
    bool positional = false;
    bool many = false;  // collects every remaining positional argument
  };
  template <class T>
  void add_value(const char* group, const char* name, const char* help, std::function<T&(Args&)> field) {
    const std::string flag = name;
    Row row{group, name, help};
    row.takes_value = true;
    row.default_text = [field](const Args& a) { return flag_codec::text(field(const_cast<Args&>(a))); };
    row.read = [field, flag](const cxxopts::ParseResult& r, Args& a) {
      if (!r.count(flag)) return;
      try {
        flag_codec::parse(r[flag].as<std::string>(), field(a));
      } catch (const std::invalid_argument& e) {
        const std::string what = e.what();
        throw UsageError(what.rfind("--", 0) == 0 ? what : "--" + flag + ": " + what);
      }
    };
    row.write = [field, flag](const Args& a, nlohmann::json& j) {
      j[flag] = flag_codec::json(field(const_cast<Args&>(a)));
    };
    rows_.push_back(std::move(row));
  }
  std::string program_, description_, positional_help_;
  std::vector<Row> rows_;
};

}  // namespace detr
