#ifndef PAYORCH_SERVICE_CONFIG_RELOAD_H_
#define PAYORCH_SERVICE_CONFIG_RELOAD_H_

// Reports the reloads of the files payorchd watches while running (merchant
// configuration and keys, caller policy): one JSON log line each
// (JsonLineLogger::LogConfigReload) and
// payorch_config_reload_total{config, result="applied|rejected"}.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <string>

#include "absl/status/status.h"
#include "service/request_logger.h"

namespace payorch::service {

class ConfigReloadReporter {
 public:
  // `registry` may be null (no metrics); `log` must outlive the reporter.
  ConfigReloadReporter(JsonLineLogger* log, prometheus::Registry* registry);

  // `status` OK: applied, with `entries` in force; else rejected.
  void Report(const std::string& config, const std::string& file,
              const absl::Status& status, size_t entries);

 private:
  JsonLineLogger* const log_;
  prometheus::Family<prometheus::Counter>* counter_ = nullptr;
};

}  // namespace payorch::service

#endif  // PAYORCH_SERVICE_CONFIG_RELOAD_H_
