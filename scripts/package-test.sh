#!/usr/bin/env bash
# Install the Debian package in a fresh Debian 12 root with `dpkg -i` and check that the agent
# starts with the shipped configuration and policy once certificates are in place, by talking to
# it with `openssl s_client` on loopback.
#
# Usage: scripts/package-test.sh [DEB]   (default: the newest build/package/opsagent_*_amd64.deb;
#                                         run scripts/package.sh first)
#
# Where: a Docker container (debian:12, --network host) when a Docker engine answers, else a
# debootstrap chroot (the base is cached in build/package/debian12-base.tar; every run unpacks
# a fresh copy). It says which. Neither available: it says what is missing and exits 1.
# Needs root (chroot, dpkg in the root). Not run by CI (minutes, network for the first base).
#
# Inside, as an operator would: dpkg -i (apt-get -f install for the dependencies), certificates
# from scripts/gen-dev-certs.sh into /etc/opsagent/tls (key: opsagent, 0600), the listen port
# moved to a free one (this host may run other agents on 9999), then the agent is started from
# /usr/sbin/opsagent with the shipped /etc/opsagent files, as root, as systemd would (the chroot
# has no systemd): it must drop to opsagent, answer `ping` and run the shipped `uptime`.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"
out="${repo_root}/build/package"
deb="${1:-$(ls -t "${out}"/opsagent_*_amd64.deb 2>/dev/null | head -n1 || true)}"
if [[ -z "${deb}" || ! -f "${deb}" ]]; then
  echo "package-test.sh: no package; run scripts/package.sh first" >&2
  exit 1
fi
deb="$(realpath "${deb}")"
for tool in openssl; do
  command -v "${tool}" >/dev/null 2>&1 || { echo "package-test.sh: ${tool} is missing" >&2; exit 1; }
done

work="$(mktemp -d /tmp/opsagent-pkgtest-XXXXXX)"
agent_pid_file="${work}/agent.pid"
mode=""
root=""
cleanup() {
  if [[ "${mode}" == chroot && -n "${root}" ]]; then
    if [[ -s "${root}/run/opsagent-test.pid" ]]; then
      local pid
      pid="$(cat "${root}/run/opsagent-test.pid")"
      if [[ "${pid}" =~ ^[0-9]+$ && "${pid}" -gt 1 ]]; then kill -TERM "${pid}" 2>/dev/null || true; fi
      sleep 1
    fi
    for m in proc dev/pts dev sys; do umount -l "${root}/${m}" 2>/dev/null || true; done
  fi
  if [[ "${mode}" == docker ]]; then docker rm -f opsagent-pkgtest >/dev/null 2>&1 || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
certs="${work}/certs"
scripts/gen-dev-certs.sh "${certs}" >/dev/null

# What runs inside the fresh root (bash, as root). $1 = port.
cat > "${work}/inside.sh" <<'INSIDE'
#!/bin/bash
set -euo pipefail
port="$1"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -i /pkg/opsagent.deb; then
  echo "== dpkg -i left dependencies to fetch: apt-get -f install"
  apt-get update -qq
  apt-get install -y -f -qq --no-install-recommends
fi
dpkg -s opsagent | grep -E '^(Status|Version):'
id opsagent
test -d /var/log/opsagent && stat -c '%U:%G %a %n' /var/log/opsagent
test -f /lib/systemd/system/opsagent.service
test -f /etc/logrotate.d/opsagent
test -f /usr/share/man/man8/opsagent.8.gz && test -f /usr/share/man/man1/opsctl.1.gz
test -x /usr/sbin/opsagent-guard && test -x /usr/bin/opsctl
grep -Fx /etc/opsagent/agent.yaml /var/lib/dpkg/info/opsagent.conffiles
install -m 0644 /certs/server.crt /certs/ca.crt /etc/opsagent/tls/
install -o opsagent -g opsagent -m 0600 /certs/server.key /etc/opsagent/tls/server.key
sed -i "s/^listen: .*/listen: [\"127.0.0.1:${port}\"]/" /etc/opsagent/agent.yaml
opsagent --config /etc/opsagent/agent.yaml --check-config
/usr/sbin/opsagent --config /etc/opsagent/agent.yaml > /var/log/opsagent-test.log 2>&1 &
echo $! > /run/opsagent-test.pid
for _ in $(seq 1 100); do
  grep -q "listening on" /var/log/opsagent-test.log && break
  sleep 0.1
done
cat /var/log/opsagent-test.log
grep -E '^(Uid|Gid|Groups|CapEff):' "/proc/$(cat /run/opsagent-test.pid)/status"
INSIDE
chmod +x "${work}/inside.sh"

if timeout 10 docker info >/dev/null 2>&1; then
  mode=docker
  echo "package-test.sh: using Docker (debian:12 container, --network host)"
  docker run -d --name opsagent-pkgtest --network host \
    -v "${deb}:/pkg/opsagent.deb:ro" -v "${certs}:/certs:ro" -v "${work}/inside.sh:/inside.sh:ro" \
    debian:12 sleep infinity >/dev/null
  docker exec opsagent-pkgtest bash -c 'apt-get update -qq && apt-get install -y -qq procps >/dev/null'
  docker exec opsagent-pkgtest /inside.sh "${port}"
elif command -v debootstrap >/dev/null 2>&1 && command -v chroot >/dev/null 2>&1; then
  mode=chroot
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "package-test.sh: the chroot needs root" >&2
    exit 1
  fi
  echo "package-test.sh: no Docker engine answers (docker info failed); using a debootstrap chroot"
  base="${out}/debian12-base.tar"
  if [[ ! -f "${base}" ]]; then
    echo "package-test.sh: creating the Debian 12 base once (debootstrap --variant=minbase)"
    mkdir -p "${out}"
    debootstrap --variant=minbase --include=procps,openssl,ca-certificates,adduser bookworm \
      "${work}/base" http://deb.debian.org/debian >"${work}/debootstrap.log" 2>&1 ||
      { tail -n 20 "${work}/debootstrap.log" >&2; exit 1; }
    tar -C "${work}/base" -cf "${base}.tmp" . && mv "${base}.tmp" "${base}"
    rm -rf "${work}/base"
  fi
  root="${work}/root"
  mkdir -p "${root}"
  tar -C "${root}" -xf "${base}"
  mkdir -p "${root}/pkg" "${root}/certs"
  cp "${deb}" "${root}/pkg/opsagent.deb"
  cp "${certs}"/{server.crt,server.key,ca.crt} "${root}/certs/"
  cp "${work}/inside.sh" "${root}/inside.sh"
  cp /etc/resolv.conf "${root}/etc/resolv.conf" 2>/dev/null || true
  mount -t proc proc "${root}/proc"
  mount --bind /dev "${root}/dev"
  mount --bind /dev/pts "${root}/dev/pts"
  mount --bind /sys "${root}/sys"
  chroot "${root}" /inside.sh "${port}"
else
  echo "package-test.sh: neither a Docker engine (docker info fails; start dockerd" \
       "--bridge=none --iptables=false) nor debootstrap (apt-get install debootstrap) is available" >&2
  exit 1
fi

# From outside, as a client would: mutual TLS on loopback with openssl s_client.
reply="$(printf 'ping\nrun uptime\nexit\n' | timeout 20 openssl s_client -quiet -connect "127.0.0.1:${port}" \
  -verify_return_error -cert "${certs}/alice.crt" -key "${certs}/alice.key" \
  -CAfile "${certs}/ca.crt" 2>/dev/null || true)"
echo "${reply}"
grep -q '^OK opsagent .* ready' <<<"${reply}" || { echo "package-test.sh: FAIL: no greeting" >&2; exit 1; }
grep -q '^OK pong' <<<"${reply}" || { echo "package-test.sh: FAIL: no pong" >&2; exit 1; }
grep -q '^| .*load average' <<<"${reply}" || { echo "package-test.sh: FAIL: uptime did not run" >&2; exit 1; }
echo "package-test.sh: OK (${mode}): the package installs, the agent starts from the shipped files," \
     "drops to opsagent and answers over mutual TLS"
