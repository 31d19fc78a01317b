// Exact integers from JSON numbers: ids and sizes in COCO files. A value that is not an exact
// integer within int64 (1e19, 2^63, 3.5, NaN) has none, so it can never collapse onto another id.
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

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

}  // namespace detr::datasets
