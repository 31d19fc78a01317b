// Command-line flags declared once: each row names the flag, its help group and text, and the field
// it sets. The table makes the parser (cxxopts), --help with defaults taken from a default-constructed
// struct, the copy into the struct and the JSON record of a run (checkpoint['args'], config.json).
// Enumerations are parsed to their enum here, at the boundary, with one message naming flag and value.
//
//   FlagTable<TrainArgs> t;
//   t.add("upstream", "lr", "learning rate", &TrainArgs::lr);
//   t.add("upstream", "hidden_dim", "transformer width", &TrainArgs::model, &models::ModelConfig::hidden_dim);
#pragma once
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <optional>
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

template <class Args>
class FlagTable {
 public:
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
  // A switch: present sets the field to `when_given` (--no_aux_loss sets aux_loss false). Recorded
  // under `json_name` (upstream's argparse dest), default: the flag's name.
  void add_switch(const char* group, const char* name, const char* help, std::function<bool&(Args&)> field,
                  bool when_given = true, const char* json_name = nullptr) {
    const std::string key = json_name ? json_name : name;
    rows_.push_back({group, name, help, nullptr,
                     [=](const cxxopts::ParseResult& r, Args& a) {
                       if (r.count(name)) field(a) = when_given;
                     },
                     [=](const Args& a, nlohmann::json& j) { j[key] = field(const_cast<Args&>(a)); }});
  }
  // Accepted for upstream's command lines, without effect (not recorded): a switch, or with
  // `takes_value` a flag with an argument.
  void add_unused(const char* group, const char* name, const char* help, bool takes_value = false) {
    rows_.push_back({group, name, help, nullptr, nullptr, nullptr, takes_value});
  }

  cxxopts::Options options(const std::string& program, const std::string& description) const {
    cxxopts::Options o(program, description);
    const Args defaults{};
    for (const auto& row : rows_) {
      if (row.default_text)
        o.add_option(row.group, {row.name, row.help, cxxopts::value<std::string>()->default_value(row.default_text(defaults))});
      else if (row.takes_value)
        o.add_option(row.group, {row.name, row.help, cxxopts::value<std::string>()});
      else
        o.add_option(row.group, {row.name, row.help});
    }
    o.add_option("", {"h,help", "print this help"});
    return o;
  }
  std::vector<std::string> groups() const {
    std::vector<std::string> g;
    for (const auto& row : rows_)
      if (std::find(g.begin(), g.end(), row.group) == g.end()) g.push_back(row.group);
    if (std::find(g.begin(), g.end(), "") == g.end()) g.emplace_back();  // --help
    return g;
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
    std::function<std::string(const Args&)> default_text;  // null: a switch
    std::function<void(const cxxopts::ParseResult&, Args&)> read;
    std::function<void(const Args&, nlohmann::json&)> write;
    bool takes_value = false;
  };
  template <class T>
  void add_value(const char* group, const char* name, const char* help, std::function<T&(Args&)> field) {
    const std::string flag = name;
    rows_.push_back({group, name, help,
                     [field](const Args& a) { return flag_codec::text(field(const_cast<Args&>(a))); },
                     [field, flag](const cxxopts::ParseResult& r, Args& a) {
                       if (!r.count(flag)) return;
                       try {
                         flag_codec::parse(r[flag].as<std::string>(), field(a));
                       } catch (const std::invalid_argument& e) {
                         const std::string what = e.what();
                         throw UsageError(what.rfind("--", 0) == 0 ? what : "--" + flag + ": " + what);
                       }
                     },
                     [field, flag](const Args& a, nlohmann::json& j) {
                       j[flag] = flag_codec::json(field(const_cast<Args&>(a)));
                     }});
  }
  std::vector<Row> rows_;
};

}  // namespace detr
