#include "src/metric_logger.h"

#include <cmath>

namespace detr {

const MetricLogger::Meter* MetricLogger::find(const std::string& name) const {
  for (const auto& m : meters_)
    if (m.name == name) return &m;
  return nullptr;
}

void MetricLogger::update(const std::string& name, double value, int64_t n) {
  auto* m = const_cast<Meter*>(find(name));
  if (!m) {
    meters_.push_back({name});
    m = &meters_.back();
  }
  m->total += value * static_cast<double>(n);
  m->count += n;
  m->last = value;
}

double MetricLogger::global_avg(const std::string& name) const {
  const auto* m = find(name);
  return m && m->count ? m->total / static_cast<double>(m->count) : NAN;
}

double MetricLogger::last(const std::string& name) const {
  const auto* m = find(name);
  return m ? m->last : NAN;
}

std::vector<std::pair<std::string, double>> MetricLogger::averages() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& m : meters_) out.emplace_back(m.name, m.count ? m.total / static_cast<double>(m.count) : NAN);
  return out;
}

nlohmann::json MetricLogger::state() const {
  auto rows = nlohmann::json::array();
  for (const auto& m : meters_) rows.push_back({m.name, m.total, m.count, m.last});
  return rows;
}

void MetricLogger::merge(const nlohmann::json& state) {
  auto number = [](const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); };  // JSON writes NaN as null
  for (const auto& row : state) {
    const auto name = row.at(0).get<std::string>();
    auto* m = const_cast<Meter*>(find(name));
    if (!m) {
      meters_.push_back({name});
      m = &meters_.back();
      m->last = number(row.at(3));
    }
    m->total += number(row.at(1));
    m->count += row.at(2).get<int64_t>();
  }
}

}  // namespace detr
