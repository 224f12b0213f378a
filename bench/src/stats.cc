#include "bench/src/stats.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace payorch::bench {

void Recorder::Add(absl::Duration latency, const std::string& outcome, bool ok,
                   bool measured, absl::Time completed_at) {
  completed_.fetch_add(1);
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

int64_t ProcessCpuMicros(int pid) {
  std::string path =
      pid == 0 ? "/proc/self/stat" : absl::StrCat("/proc/", pid, "/stat");
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: count from its ')'.
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(text.substr(paren + 2));
  std::string f;
  int64_t utime = -1, stime = -1;
  // Field 3 (state) is the first after ')'; utime is 14, stime 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 && !absl::SimpleAtoi(f, &utime)) return -1;
    if (i == 15 && !absl::SimpleAtoi(f, &stime)) return -1;
  }
  if (utime < 0 || stime < 0) return -1;
  static const int64_t ticks = sysconf(_SC_CLK_TCK);
  return (utime + stime) * 1000000 / ticks;
}

CpuWindow::CpuWindow(std::vector<std::pair<std::string, int>> pids,
                     const Recorder* rec, absl::Time t0, absl::Time t1)
    : pids_(std::move(pids)), rec_(rec), t0_(t0), t1_(t1) {
  thread_ = std::thread([this] { Run(); });
}

CpuWindow::~CpuWindow() { Wait(); }

void CpuWindow::Wait() {
  if (thread_.joinable()) thread_.join();
}

void CpuWindow::Run() {
  auto sample = [this](absl::Time at, std::vector<int64_t>* cpu, int64_t* done,
                       absl::Time* when) {
    absl::SleepFor(at - absl::Now());
    *when = absl::Now();
    *done = rec_->Completed();
    for (const auto& p : pids_) cpu->push_back(ProcessCpuMicros(p.second));
  };
  sample(t0_, &cpu0_, &done0_, &s0_);
  sample(t1_, &cpu1_, &done1_, &s1_);
}

nlohmann::json CpuWindow::Json() const {
  const int64_t n = done1_ - done0_;
  const double secs = absl::ToDoubleSeconds(s1_ - s0_);
  nlohmann::json per_req = nlohmann::json::object();
  nlohmann::json share = nlohmann::json::object();
  for (size_t i = 0; i < pids_.size() && i < cpu1_.size(); ++i) {
    if (cpu0_[i] < 0 || cpu1_[i] < 0 || n <= 0 || secs <= 0) continue;
    const double us = static_cast<double>(cpu1_[i] - cpu0_[i]);
    per_req[pids_[i].first] = us / static_cast<double>(n);
    share[pids_[i].first] = us / 1e6 / secs;
  }
  return {{"window_requests", n},
          {"window_s", secs},
          {"cpu_us_per_req", per_req},
          {"cpu_share", share}};
}

std::vector<std::pair<std::string, int>> ParseCpuPids(const std::string& flag) {
  std::vector<std::pair<std::string, int>> out;
  for (absl::string_view item : absl::StrSplit(flag, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits(':', 1));
    int pid = 0;
    if (kv.first.empty() || !absl::SimpleAtoi(kv.second, &pid) || pid < 0) {
      continue;
    }
    out.emplace_back(std::string(kv.first), pid);
  }
  return out;
}

}  // namespace payorch::bench
