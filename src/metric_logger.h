// Running means of logged values (upstream util/misc.py SmoothedValue/MetricLogger, reduced to what
// the logs use: the epoch mean, global_avg), in first-logged order.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace detr {

class MetricLogger {
 public:
  void update(const std::string& name, double value, int64_t n = 1);
  double global_avg(const std::string& name) const;  // NaN if never logged
  double last(const std::string& name) const;
  // (name, epoch mean) in first-logged order.
  std::vector<std::pair<std::string, double>> averages() const;
  bool empty() const { return meters_.empty(); }

  // Across processes (upstream synchronize_between_processes): the meters as [name, total, count,
  // last] rows, and a merge that sums totals and counts by name (new names appended in order).
  nlohmann::json state() const;
  void merge(const nlohmann::json& state);

 private:
  struct Meter {
    std::string name;
    double total = 0;
    int64_t count = 0;
    double last = 0;
  };
  const Meter* find(const std::string& name) const;
  std::vector<Meter> meters_;
};

}  // namespace detr
