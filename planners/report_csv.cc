#include <fmt/format.h>

#include "planners/report.h"

namespace mailshard::planner {

std::string render_csv(const Plan& plan) {
  const bool nights = plan.constraints.nights > 1;
  std::string out = nights ? "user_id,from_server,to_server,size_bytes,night\n" : "user_id,from_server,to_server,size_bytes\n";
  out.reserve(out.size() + plan.moves.size() * 32);
  for (const auto& m : plan.moves) {
    if (nights)
      fmt::format_to(std::back_inserter(out), "{},{},{},{},{}\n", m.user, m.from, m.to, m.bytes, m.night);
    else
      fmt::format_to(std::back_inserter(out), "{},{},{},{}\n", m.user, m.from, m.to, m.bytes);
  }
  return out;
}

}  // namespace mailshard::planner
