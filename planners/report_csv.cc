#include <fmt/format.h>

#include "planners/report.h"

namespace mailshard::planner {

std::string render_csv(const Plan& plan) {
  const bool nights = plan.constraints.nights > 1;
  std::string out = nights ? "user_id,from_server,to_server,size_bytes,night\n" : "user_id,from_server,to_server,size_bytes\n";
  out.reserve(out.size() + plan.moves.size() * 40);
  // Integers as fmt writes them, without a format string to parse per row.
  auto field = [&out](int64_t v, char sep) {
    const fmt::format_int f(v);
    out.append(f.data(), f.size());
    out += sep;
  };
  for (const auto& m : plan.moves) {
    field(m.user, ',');
    field(m.from, ',');
    field(m.to, ',');
    if (nights) {
      field(m.bytes, ',');
      field(m.night, '\n');
    } else {
      field(m.bytes, '\n');
    }
  }
  return out;
}

}  // namespace mailshard::planner
