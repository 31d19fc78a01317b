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

}  // namespace detr
