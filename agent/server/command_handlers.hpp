#pragma once
// The seam between the gate (dispatcher.hpp) and what commands do (commands.hpp), as LevelDB's
// Env is between the database and the file system: the agent plugs in Commands, which runs
// processes and reads files; unit tests of the gate plug in a fake.

#include <boost/asio/awaitable.hpp>

#include "agent/policy/authorizer.hpp"
#include "agent/protocol/command_parser.hpp"
#include "agent/protocol/verbs.hpp"
#include "agent/server/outcome.hpp"
#include "agent/server/reply_stream.hpp"

namespace opsagent::server {

/// Used only on the session's strand.
class CommandHandlers {
 public:
  virtual ~CommandHandlers() = default;
  /// Carries out a command that the gate has parsed, authorised (`decision` allows it) and
  /// audited. Writes data lines to `out`; the gate writes the final line from the Outcome.
  virtual boost::asio::awaitable<Outcome> execute(const protocol::VerbSpec& verb,
                                                  const protocol::Command& cmd,
                                                  const policy::Decision& decision,
                                                  ReplyStream& out) = 0;
  /// The client went away or the session ends: kill a running child, stop a running digest.
  virtual void cancel() noexcept = 0;
};

}  // namespace opsagent::server
