#!/usr/bin/env bash
# Make the Debian 12 base image without a registry: debootstrap a minimal bookworm root from the
# Debian mirror and `docker import` it as opsagent/debian:12 (used for both Dockerfile stages:
# --build-arg BUILD_BASE=opsagent/debian:12 --build-arg RUNTIME_BASE=opsagent/debian:12).
#
# Usage: scripts/docker-base.sh [TAG]    (default: opsagent/debian:12; needs root, debootstrap,
#                                         a running Docker engine and the Debian mirror)
# A root already made by scripts/package-test.sh (build/package/debian12-base.tar, minbase plus
# procps, openssl, ca-certificates, adduser) is imported as it is, without a new debootstrap.
set -euo pipefail
tag="${1:-opsagent/debian:12}"
mirror="${OPSAGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cached="${repo_root}/build/package/debian12-base.tar"
if [[ -f "${cached}" ]]; then
  command -v docker >/dev/null 2>&1 || { echo "docker-base.sh: docker is missing" >&2; exit 1; }
  echo "docker-base.sh: importing ${cached} (made by debootstrap for package-test.sh)"
  docker import --change 'CMD ["/bin/bash"]' "${cached}" "${tag}"
  exit 0
fi
for tool in debootstrap docker; do
  command -v "${tool}" >/dev/null 2>&1 || { echo "docker-base.sh: ${tool} is missing" >&2; exit 1; }
done
[[ "$(id -u)" -eq 0 ]] || { echo "docker-base.sh: debootstrap needs root" >&2; exit 1; }
root="$(mktemp -d /tmp/opsagent-debian12-XXXXXX)"
trap 'rm -rf "${root}"' EXIT
echo "docker-base.sh: debootstrap bookworm (minbase) from ${mirror}"
debootstrap --variant=minbase bookworm "${root}" "${mirror}" >"${root}.log" 2>&1 ||
  { tail -n 20 "${root}.log" >&2; exit 1; }
rm -f "${root}.log"
# What the official image configures: apt sources and no recommends, no docs.
printf 'APT::Install-Recommends "false";\n' >"${root}/etc/apt/apt.conf.d/90opsagent"
rm -rf "${root}"/var/lib/apt/lists/* "${root}"/var/cache/apt/*.bin
tar -C "${root}" -c . | docker import --change 'CMD ["/bin/bash"]' - "${tag}"
echo "docker-base.sh: imported ${tag}"
