#!/usr/bin/env bash
# Build one preset and run all its tests: this is the "run all tests" command.
#
# Usage: scripts/test.sh [PRESET]    (default: release; also debug, asan, tsan)
#   OPSAGENT_SKIP_DEPS=1  do not run scripts/install-deps.sh first
# Unit tests (label "unit") run two at a time; integration tests start real agents on loopback
# and run one at a time. Exits non-zero if the build or any test fails.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

preset="${1:-release}"

scripts/build.sh "${preset}"

status=0
echo "test.sh: unit tests (${preset})"
ctest --preset "${preset}" --output-on-failure --timeout 300 -L unit -j2 || status=1
echo "test.sh: integration, fault, slow and fuzz-replay tests (${preset})"
ctest --preset "${preset}" --output-on-failure --timeout 300 -LE unit -j1 || status=1

if [[ "${status}" -ne 0 ]]; then
  echo "test.sh: FAILED (${preset})" >&2
fi
exit "${status}"
