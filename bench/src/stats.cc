#include "bench/src/stats.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace payorch::bench {

void Recorder::Add(absl::Duration latency, const std::string& outcome, bool ok,
                   bool measured, absl::Time completed_at) {
  absl::MutexLock lock(&mu_);
  if (!measured) {
    ++warmup_;
    return;
  }
  latencies_us_.push_back(absl::ToInt64Microseconds(latency));
  ++outcomes_[outcome];
  if (ok) {
    ++ok_;
  } else {
    ++errors_;
  }
  first_done_ = std::min(first_done_, completed_at);
  last_done_ = std::max(last_done_, completed_at);
}

void Recorder::AddDropped() {
  absl::MutexLock lock(&mu_);
  ++dropped_;
  ++outcomes_["CLIENT_DROPPED"];
}

namespace {
double Percentile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t idx = static_cast<size_t>(q * static_cast<double>(sorted.size()));
  if (idx >= sorted.size()) idx = sorted.size() - 1;
  return static_cast<double>(sorted[idx]) / 1000.0;  // ms
}
}  // namespace

nlohmann::json Recorder::Summarize(const RunSpec& spec,
                                   absl::Time measure_start,
                                   absl::Time issue_end, int64_t issued,
                                   std::string* out_table) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> sorted = latencies_us_;
  std::sort(sorted.begin(), sorted.end());
  const int64_t completed = static_cast<int64_t>(sorted.size());
  // Throughput over the measured window: from the end of warm-up (or the
  // first measured completion, whichever is later) to the last completion.
  absl::Time from = std::max(measure_start, std::min(first_done_, issue_end));
  double window_s =
      completed > 0 ? absl::ToDoubleSeconds(last_done_ - from) : 0;
  double rps = window_s > 0 ? static_cast<double>(completed) / window_s : 0;
  double sum = 0;
  for (int64_t v : sorted) sum += static_cast<double>(v);
  nlohmann::json lat = {
      {"p50", Percentile(sorted, 0.50)},
      {"p90", Percentile(sorted, 0.90)},
      {"p99", Percentile(sorted, 0.99)},
      {"p999", Percentile(sorted, 0.999)},
      {"max", sorted.empty() ? 0.0 : static_cast<double>(sorted.back()) / 1000},
      {"mean", completed ? sum / static_cast<double>(completed) / 1000 : 0.0}};
  nlohmann::json outcomes = nlohmann::json::object();
  for (const auto& [k, v] : outcomes_) outcomes[k] = v;
  nlohmann::json j = {
      {"tool", spec.tool},
      {"label", spec.label},
      {"op", spec.op},
      {"mode", spec.mode},
      {"concurrency", spec.concurrency},
      {"rate", spec.rate},
      {"count_limit", spec.count},
      {"duration_limit_s", absl::ToDoubleSeconds(spec.duration)},
      {"warmup_s", absl::ToDoubleSeconds(spec.warmup)},
      {"issued", issued},
      {"warmup_completed", warmup_},
      {"completed", completed},
      {"ok", ok_},
      {"errors", errors_},
      {"dropped", dropped_},
      {"window_s", window_s},
      {"throughput_rps", rps},
      {"latency_ms", lat},
      {"outcomes", outcomes}};
  if (out_table != nullptr) {
    std::string t = absl::StrFormat(
        "%-28s %-6s conc=%-6d rate=%-8.0f done=%-8d ok=%-8d err=%-6d "
        "rps=%-9.1f\n  latency ms: p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f "
        "max=%.3f\n  outcomes:",
        spec.label.empty() ? spec.op : spec.label, spec.mode, spec.concurrency,
        spec.rate, completed, ok_, errors_ + dropped_, rps,
        Percentile(sorted, 0.50), Percentile(sorted, 0.90),
        Percentile(sorted, 0.99), Percentile(sorted, 0.999),
        sorted.empty() ? 0.0 : static_cast<double>(sorted.back()) / 1000);
    for (const auto& [k, v] : outcomes_) absl::StrAppend(&t, " ", k, "=", v);
    absl::StrAppend(&t, "\n");
    *out_table = t;
  }
  return j;
}

bool WriteJsonFile(const std::string& path, const nlohmann::json& j) {
  if (path.empty() || path == "-") return true;
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  return static_cast<bool>(out);
}

std::string TransId(const std::string& prefix, int64_t i, int64_t space) {
  if (space > 0) i %= space;
  return absl::StrCat(prefix, "-", i);
}

}  // namespace payorch::bench
