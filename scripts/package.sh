#!/usr/bin/env bash
# Build the Debian package: build/package/opsagent_<version>_amd64.deb.
#
# Usage: scripts/package.sh
#   OPSAGENT_SKIP_DEPS=1  do not run scripts/install-deps.sh first
# Configures the release preset without tests in build/package-tree (same flags as
# build/release, so ccache serves what that built), builds it, then runs `cpack -G DEB` there
# (cmake/Packaging.cmake says what goes in). Not run by CI (slow); scripts/package-test.sh installs the result in a
# fresh Debian 12 root and starts it.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

for tool in cpack dpkg-deb dpkg-shlibdeps gzip; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    echo "package.sh: ${tool} is missing (apt-get install cmake dpkg-dev gzip)" >&2
    exit 1
  fi
done

if [[ "${OPSAGENT_SKIP_DEPS:-0}" != "1" ]]; then
  scripts/install-deps.sh
fi
tree="build/package-tree"
cmake --preset release -B "${tree}" -DOPSAGENT_BUILD_TESTS=OFF
cmake --build "${tree}" -j2
out="${repo_root}/build/package"
mkdir -p "${out}"
(cd "${tree}" && cpack -G DEB -B "${out}")
deb="$(ls -t "${out}"/opsagent_*_amd64.deb | head -n1)"
echo "package.sh: built ${deb}"
dpkg-deb --info "${deb}" | sed -n '/Package:/,$p'
dpkg-deb --contents "${deb}" | awk '{print $1, $2, $6}'
