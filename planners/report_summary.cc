#include <nlohmann/json.hpp>

#include "planners/report.h"

namespace mailshard::planner {

std::string render_summary(const Plan& p, const std::string& hash) {
  auto ratio = [](double a, double b) -> nlohmann::json {
    if (b > 0) return a / b;
    return nullptr;
  };
  nlohmann::ordered_json classes = nlohmann::ordered_json::array();
  for (const auto& c : p.classes)
    classes.push_back({{"name", c.name},
                       {"servers", c.servers},
                       {"mean_util", c.mean_util},
                       {"out_of_band_before", c.out_of_band_before},
                       {"out_of_band_after", c.out_of_band_after},
                       {"max_minus_mean_before", c.max_minus_mean_before},
                       {"max_minus_mean_after", c.max_minus_mean_after},
                       {"load_max_over_mean_before", c.load_max_over_mean_before},
                       {"load_max_over_mean_after", c.load_max_over_mean_after}});
  nlohmann::ordered_json j = {
      {"plan_hash", hash},
      {"strategy", p.strategy},
      {"partial", p.partial},
      {"partial_reasons", p.partial_reasons},
      {"moves", p.estimate.moves},
      {"bytes", p.estimate.bytes},
      {"lb_bytes", p.bounds.lb_bytes},
      {"lb_moves", p.bounds.lb_moves},
      {"bytes_over_lb", ratio(static_cast<double>(p.estimate.bytes), static_cast<double>(p.bounds.lb_bytes))},
      {"moves_over_lb", ratio(static_cast<double>(p.estimate.moves), static_cast<double>(p.bounds.lb_moves))},
      {"makespan_s", p.estimate.makespan_s},
      {"t_lb_s", p.bounds.t_lb_s},
      {"nights", p.estimate.nights},
      {"nights_lb", p.bounds.nights_lb},
      {"classes", classes},
      {"warnings", p.warnings},
  };
  return j.dump(2) + "\n";
}

}  // namespace mailshard::planner
