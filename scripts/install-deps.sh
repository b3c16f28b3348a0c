#!/usr/bin/env bash
# Install the Debian 12 packages needed to build and test opsagent.
#
# Usage: scripts/install-deps.sh [--with-tools]
#   --with-tools  also install clang, clang-tidy and clang-format (fuzzing, sanitizers, lint)
#
# Idempotent and non-interactive. When every package is already installed it does not touch apt
# at all, so repeated runs (build.sh calls this every time) take well under a second.
set -euo pipefail

with_tools=0
for arg in "$@"; do
  case "${arg}" in
    --with-tools) with_tools=1 ;;
    -h | --help)
      sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install-deps.sh: unknown argument: ${arg}" >&2
      exit 2
      ;;
  esac
done

packages=(
  build-essential g++ cmake ninja-build ccache pkg-config git ca-certificates
  openssl libssl-dev libboost1.81-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libre2-dev libedit-dev libsystemd-dev libcli11-dev libgtest-dev googletest
  procps iproute2 util-linux zsh
)
if [[ "${with_tools}" -eq 1 ]]; then
  packages+=(clang clang-tidy clang-format)
fi

# Packages whose dpkg status is not "install ok installed".
missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)"
  if [[ "${status}" != "install ok installed" ]]; then
    missing+=("${pkg}")
  fi
done

if [[ "${#missing[@]}" -eq 0 ]]; then
  echo "install-deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo --preserve-env=DEBIAN_FRONTEND)
  else
    echo "install-deps.sh: not root and sudo is not available; missing: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps.sh: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
