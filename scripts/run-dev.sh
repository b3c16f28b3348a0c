#!/usr/bin/env bash
# Set up and run the agent on a fresh Debian 12: install dependencies, build the release preset,
# generate development certificates into certs/dev/, then run the agent in the foreground with
# config/agent.yaml (listening on 127.0.0.1:9999). Ctrl-C stops it.
#
# Usage: scripts/run-dev.sh [extra opsagent arguments...]
#   OPSAGENT_SKIP_DEPS=1  do not run scripts/install-deps.sh
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

scripts/build.sh release
scripts/gen-dev-certs.sh
mkdir -p var
# The agent refuses the files it trusts (configuration, policy, certificates, the guard, the
# audit log) and the directories holding them when group or others may write them. A checkout
# or build made under umask 002 leaves them group-writable, so tighten them here.
chmod go-w config config/agent.yaml config/policy.yaml var \
  build/release/agent/app build/release/agent/app/opsagent-guard

certs="${repo_root}/certs/dev"
cat <<MSG

opsagent is starting on 127.0.0.1:9999. Talk to it as "alice" from another terminal with:

  openssl s_client -quiet -connect 127.0.0.1:9999 -cert ${certs}/alice.crt -key ${certs}/alice.key -CAfile ${certs}/ca.crt -verify_return_error

(-quiet matters: without it s_client treats lines starting with Q, R, k or K as its own commands.)
Other identities: ci-bot.crt/.key (mapped by URI SAN), mallory.crt/.key (valid but not in policy).

MSG

exec build/release/agent/app/opsagent --config config/agent.yaml "$@"
