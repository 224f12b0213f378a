#ifndef PAYORCH_BENCH_SRC_STATS_H_
#define PAYORCH_BENCH_SRC_STATS_H_

// Latency and outcome accounting shared by payorch-loadgen and paykka-direct,
// so that both sides of every comparison are summarised by the same code.
//
// Latency is measured from the request's *intended* send time: in closed
// loop that is when it was issued, in open loop it is its slot on the fixed
// arrival schedule, so a stalled system is charged for the requests it kept
// waiting (coordinated-omission free).

#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace payorch::bench {

// How a run is driven. Filled from flags by each tool.
struct RunSpec {
  std::string tool;         // "payorch-loadgen" | "paykka-direct"
  std::string label;        // free text, e.g. "a.create.payorch.peak"
  std::string op;           // create | replay | get_order | charge | ...
  std::string mode;         // "closed" | "open"
  int concurrency = 0;      // closed loop: outstanding requests
  double rate = 0;          // open loop: arrivals per second
  int64_t count = 0;        // upper bound on requests issued (incl. warm-up)
  absl::Duration duration;  // upper bound on the issuing period
  absl::Duration warmup;    // requests intended before this are not measured
};

// Thread-safe recorder. Outcome keys are free text: "OK",
// "UNAVAILABLE/PSP_OUTCOME_UNKNOWN", "HTTP_200/000000", ...
class Recorder {
 public:
  // `measured` false for warm-up requests: counted apart, not summarised.
  void Add(absl::Duration latency, const std::string& outcome, bool ok,
           bool measured, absl::Time completed_at);
  // A request the client could not even issue (e.g. its own cap reached).
  void AddDropped();
  // Requests completed so far, warm-up included (any outcome).
  int64_t Completed() const { return completed_.load(); }

  // The summary as JSON; also fills `out_table` with a short text table.
  nlohmann::json Summarize(const RunSpec& spec, absl::Time measure_start,
                           absl::Time issue_end, int64_t issued,
                           std::string* out_table);

 private:
  std::atomic<int64_t> completed_{0};
  absl::Mutex mu_;
  std::vector<int64_t> latencies_us_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> outcomes_ ABSL_GUARDED_BY(mu_);
  int64_t ok_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t warmup_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time first_done_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time last_done_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// CPU time (user + system) a process has used, in microseconds, from
// /proc/<pid>/stat (pid 0: this process); -1 when it cannot be read.
int64_t ProcessCpuMicros(int pid);

// The CPU cost per request of named processes over a measured window: on its
// own thread it reads each process's CPU time and the recorder's completion
// count at `t0` and at `t1`; Json() (after Wait()) gives
// {"window_requests": N, "cpu_us_per_req": {name: us}, "cpu_share": {name:
// cores busy}}. This figure survives other load on the machine, unlike
// throughput. `pids`: name -> pid (0: this process).
class CpuWindow {
 public:
  CpuWindow(std::vector<std::pair<std::string, int>> pids, const Recorder* rec,
            absl::Time t0, absl::Time t1);
  ~CpuWindow();
  void Wait();
  nlohmann::json Json() const;

 private:
  void Run();
  std::vector<std::pair<std::string, int>> pids_;
  const Recorder* rec_;
  absl::Time t0_, t1_, s0_, s1_;
  std::vector<int64_t> cpu0_, cpu1_;
  int64_t done0_ = 0, done1_ = 0;
  std::thread thread_;
};

// "name:pid,name:pid" (a flag) -> pairs; an empty name or a bad pid is
// skipped.
std::vector<std::pair<std::string, int>> ParseCpuPids(const std::string& flag);

// Writes `j` to `path` ("-" or empty: nowhere). False on I/O error.
bool WriteJsonFile(const std::string& path, const nlohmann::json& j);

// The fixed arrival schedule of an open loop: slot i is at
// start + i / rate.
inline absl::Time IntendedTime(absl::Time start, double rate, int64_t i) {
  return start + absl::Nanoseconds(static_cast<int64_t>(1e9 * i / rate));
}

// Trans_id for request i: fresh ("<prefix>-<i>") or cycling over a fixed
// space of ids created earlier ("<prefix>-<i mod space>").
std::string TransId(const std::string& prefix, int64_t i, int64_t space);

}  // namespace payorch::bench

#endif  // PAYORCH_BENCH_SRC_STATS_H_
