// Exact integers from JSON numbers: ids and sizes in COCO files. A value that is not an exact
// integer within int64 (1e19, 2^63, 3.5, NaN) has none, so it can never collapse onto another id.
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace detr::datasets {

inline std::optional<int64_t> exact_int64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {  // an integral float such as 3.0 (Python compares 3.0 == 3)
    const double d = v.get<double>();
    constexpr double two63 = 9223372036854775808.0;
    if (std::isfinite(d) && std::floor(d) == d && d >= -two63 && d < two63) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

// A JSON value for an error message: scalars as JSON (strings cut at 200 bytes), containers summarised
// unless small and flat ("[1, 2, 3, 4]"), never recursing: a value nested 100,000 levels deep, or
// megabytes long, still gives one short line.
inline std::string json_preview(const nlohmann::json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    return s.size() <= 200 ? v.dump()
                           : nlohmann::json(s.substr(0, 200)).dump() + "... (" + std::to_string(s.size()) + " bytes)";
  }
  if (!v.is_structured()) return v.dump();
  const bool flat = v.size() <= 8 && std::none_of(v.begin(), v.end(), [](const nlohmann::json& e) {
                      return e.is_structured() || (e.is_string() && e.get_ref<const std::string&>().size() > 40);
                    });
  if (flat) return v.dump();
  return std::string(v.is_array() ? "a list of " : "an object of ") + std::to_string(v.size()) +
         (v.is_array() ? " elements" : " keys");
}

}  // namespace detr::datasets
