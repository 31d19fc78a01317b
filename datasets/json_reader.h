// The one JSON reader of annotation files (COCO's instances_*.json, Datumaro's <subset>.json): parsing
// that names the file, and field access whose errors name file, record, field and value (read_error.h).
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/json_number.h"
#include "datasets/read_error.h"

namespace detr::datasets {

// The document; "<source>: not valid JSON (...)" for syntax errors and numbers out of range (1e400).
inline nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(source + ": not valid JSON (" + e.what() + ")");
  }
}

// Field access that names file, record and field on failure: "<file>: <where>: <what>".
class JsonReader {
 public:
  using json = nlohmann::json;
  explicit JsonReader(std::filesystem::path file) : file_(std::move(file)) {}
  const std::filesystem::path& file() const { return file_; }

  [[noreturn]] void fail(const std::string& what) const { fail_at(file_, "", what); }
  [[noreturn]] void fail(const std::string& where, const std::string& what) const { fail_at(file_, where, what); }

  const json& object(const json& v, const std::string& where) const {
    if (!v.is_object()) fail(where, "expected a JSON object, got " + json_preview(v));
    return v;
  }
  // A top-level list.
  const json& list(const json& root, const char* key) const {
    auto it = root.find(key);
    if (it == root.end()) fail(std::string("missing field '") + key + "'");
    if (!it->is_array()) fail(std::string("'") + key + "' must be a list, got " + json_preview(*it));
    return *it;
  }
  // obj[key]; `obj` must be an object holding it.
  const json& field(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object()) fail(where, "expected a JSON object, got " + json_preview(obj));
    auto it = obj.find(key);
    if (it == obj.end()) fail(where, std::string("missing field '") + key + "'");
    return *it;
  }
  // The field, or nullptr when it is absent or null.
  static const json* optional(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const json& v, const char* key, const std::string& where) const {
    if (const auto i = exact_int64(v)) return *i;
    fail(where, std::string("'") + key + "' must be an integer within int64, got " + json_preview(v));
  }
  double number(const json& v, const char* key, const std::string& where) const {
    if (!v.is_number()) fail(where, std::string("'") + key + "' must be a number, got " + json_preview(v));
    return v.get<double>();
  }
  std::string string(const json& v, const char* key, const std::string& where) const {
    if (!v.is_string()) fail(where, std::string("'") + key + "' must be a string, got " + json_preview(v));
    return v.get<std::string>();
  }
  // A list of finite numbers.
  std::vector<double> numbers(const json& v, const char* key, const std::string& where) const {
    if (!v.is_array() || !std::all_of(v.begin(), v.end(), finite))
      fail(where, std::string("'") + key + "' must be a list of finite numbers, got " + json_preview(v));
    std::vector<double> out;
    for (const auto& x : v) out.push_back(x.get<double>());
    return out;
  }
  std::array<double, 4> bbox(const json& v, const std::string& where) const {
    if (!(v.is_array() && v.size() == 4 && std::all_of(v.begin(), v.end(), finite)))
      fail(where, "'bbox' must be [x, y, width, height] numbers, got " + json_preview(v));
    return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>(), v[3].get<double>()};
  }
  bool iscrowd(const json& obj, const std::string& where) const {
    const json* v = optional(obj, "iscrowd");
    if (!v) return false;
    if (v->is_boolean()) return v->get<bool>();
    if (const auto i = exact_int64(*v)) return *i != 0;
    fail(where, "'iscrowd' must be 0 or 1, got " + json_preview(*v));
  }

 private:
  static bool finite(const json& x) { return x.is_number() && std::isfinite(x.get<double>()); }
  std::filesystem::path file_;
};

}  // namespace detr::datasets
