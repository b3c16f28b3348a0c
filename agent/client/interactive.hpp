#pragma once
// `opsctl HOST` without a command: a line-editing shell on one agent (libedit), a friendlier
// `openssl s_client -quiet`. Shows the greeting and every reply line as the agent sends it.

#include <filesystem>

#include <boost/asio/ssl/context.hpp>

#include "agent/client/target.hpp"

namespace opsagent::client {

/// Connects to `target`, then reads lines with libedit (prompt "NAME> "), sends each and prints
/// the reply, until `exit`/`quit`, end of input (Ctrl-D) or a lost connection. History is kept
/// in `history_file` when it is not empty. Returns the opsctl exit status: 0 after a normal
/// end, otherwise the class code of what failed (host_result.hpp). Runs on the calling thread.
int run_interactive(boost::asio::ssl::context& tls, const Target& target, const Timeouts& timeouts,
                    const std::filesystem::path& history_file);

/// $XDG_STATE_HOME/opsctl/history or ~/.local/state/opsctl/history (empty without HOME).
std::filesystem::path default_history_file();

}  // namespace opsagent::client
