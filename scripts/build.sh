#!/usr/bin/env bash
# Configure and build one CMake preset (see CMakePresets.json).
#
# Usage: scripts/build.sh [PRESET [CMAKE_ARGS...]]    (default: release; also debug, asan, tsan)
#   CMAKE_ARGS go to the configure step, e.g. scripts/build.sh release -DOPSAGENT_BUILD_TESTS=OFF
#   OPSAGENT_SKIP_DEPS=1  do not run scripts/install-deps.sh first
# Output goes to build/PRESET/; the agent binary is build/PRESET/agent/app/opsagent.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

preset="${1:-release}"
shift || true

if [[ "${OPSAGENT_SKIP_DEPS:-0}" != "1" ]]; then
  scripts/install-deps.sh
fi

cmake --preset "${preset}" "$@"
cmake --build --preset "${preset}" -j2
