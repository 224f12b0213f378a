#include "service/config_reload.h"

namespace payorch::service {

ConfigReloadReporter::ConfigReloadReporter(JsonLineLogger* log,
                                           prometheus::Registry* registry)
    : log_(log) {
  if (registry == nullptr) return;
  counter_ = &prometheus::BuildCounter()
                  .Name("payorch_config_reload_total")
                  .Help(
                      "Reloads of a watched file (config: merchants, "
                      "caller_policy) by result: applied, or rejected (the "
                      "previous configuration keeps serving)")
                  .Register(*registry);
}

void ConfigReloadReporter::Report(const std::string& config,
                                  const std::string& file,
                                  const absl::Status& status, size_t entries) {
  log_->LogConfigReload(config, file, status, entries);
  if (counter_ != nullptr) {
    counter_
        ->Add({{"config", config},
               {"result", status.ok() ? "applied" : "rejected"}})
        .Increment();
  }
}

}  // namespace payorch::service
