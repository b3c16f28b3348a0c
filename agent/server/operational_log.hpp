#pragma once
// Where the operational (diagnostic) log goes: the systemd journal, with a priority per record
// and SYSLOG_IDENTIFIER=opsagent, when stderr is the journal stream systemd set up
// (JOURNAL_STREAM names stderr's device and inode); otherwise timestamped text on stderr.
// The audit log is separate (agent/audit) and unaffected.

namespace opsagent::server {

/// True when JOURNAL_STREAM names the file open on stderr (sd-daemon(3)'s rule: a service whose
/// stderr was redirected elsewhere must not talk to the journal behind the operator's back).
bool stderr_is_journal();

/// Installs the default spdlog logger "opsagent": the journal sink when stderr_is_journal(),
/// else stderr with "%Y-%m-%dT%H:%M:%S.%e LEVEL message". Start-up only.
void install_operational_log();

}  // namespace opsagent::server
