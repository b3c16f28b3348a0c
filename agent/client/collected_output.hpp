#pragma once
// The views of a fan-out that wait for every host before they write: --sort (prefix or
// grouped, hosts in name order), --collapse (hosts with identical output and result under
// one header, as `dshbak -c` does) and the per-host table (-o table). Everything from the
// network or an inventory is escaped when it is collected.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client/output.hpp"

namespace opsagent::client {

/// True when `a` sorts before `b` in name order: runs of digits compare as numbers
/// (web2 < web10), everything else byte by byte.
bool natural_less(std::string_view a, std::string_view b) noexcept;

/// A reporter that writes when finish() is called: `mode` is prefix, grouped or table;
/// `options.sort` orders hosts by name (else: the targets' order), `options.collapse` (grouped)
/// merges hosts whose lines and result (status, exit, signal, message) are the same.
std::unique_ptr<Reporter> make_collected_reporter(OutputMode mode,
                                                  const std::vector<Target>& targets,
                                                  OutputStreams streams, ProgressLine& progress,
                                                  const ReportOptions& options);

}  // namespace opsagent::client
