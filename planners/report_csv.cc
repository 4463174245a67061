#include <fmt/compile.h>
#include <fmt/format.h>

#include "planners/report.h"

namespace mailshard::planner {

std::string render_csv(const Plan& plan) {
  const bool nights = plan.constraints.nights > 1;
  std::string out = nights ? "user_id,from_server,to_server,size_bytes,night\n" : "user_id,from_server,to_server,size_bytes\n";
  // Rows written straight into a buffer with room for all of them (five
  // integers of at most 20 characters and their separators each), integers
  // as fmt writes them without a format string parsed per number.
  const size_t head = out.size();
  out.resize(head + plan.moves.size() * 5 * 21);
  char* p = out.data() + head;
  auto field = [&p](int64_t v, char sep) {
    p = fmt::format_to(p, FMT_COMPILE("{}"), v);
    *p++ = sep;
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
  out.resize(static_cast<size_t>(p - out.data()));
  return out;
}

}  // namespace mailshard::planner
