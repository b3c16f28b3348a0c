#!/usr/bin/env bash
# Measure opsctl's streaming read path: one agent runs `cat` of a generated text file (lines of
# 100 bytes) and opsctl writes the lines to /dev/null, in raw mode (one host) and prefix mode (a
# fan-out of one inventory host). Reports wall time, MB/s and opsctl's CPU (user+sys) per MB.
# With OPSCTL_PEER=/path/to/other/opsctl the same runs are made with that binary too (e.g. a
# build of main), and the ratio peer/this is printed.
#
# Usage: scripts/bench-opsctl-stream.sh [BUILD_DIR] [MIB]      (default: build/release 128)
# Needs /usr/bin/time (GNU time). Not a test: numbers depend on the machine and its load.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${repo_root}/build/release}"
mib="${2:-128}"
# shellcheck source=scripts/bench-lib.sh
source "${repo_root}/scripts/bench-lib.sh"
bench_setup bench-opsctl-stream.sh "${build}"
# MIB MiB of 100-byte lines (99 printable bytes and LF).
awk -v n="$((mib * 1048576 / 100))" 'BEGIN {
  line = sprintf("%099d", 0); gsub(/0/, "x", line)
  for (i = 0; i < n; i++) print line }' >"${work}/big.txt"
bytes="$(stat -c %s "${work}/big.txt")"
cat >"${work}/policy.yaml" <<POLICY
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [run]
    run: [big]
commands:
  big:
    argv: [/bin/cat, ${work}/big.txt]
    max_output: 1GiB
    timeout: 10m
POLICY
cat >"${work}/agent.yaml" <<AGENT
listen: ["127.0.0.1:${port}"]
tls:
  certificate: ${work}/certs/server.crt
  private_key: ${work}/certs/server.key
  client_ca: ${work}/certs/ca.crt
audit:
  path: ${work}/audit.jsonl
policy: ${work}/policy.yaml
AGENT
# As root (a container), `run` needs the explicit opt-in.
[[ "$(id -u)" -eq 0 ]] && echo "run_as: {allow_root: true}" >>"${work}/agent.yaml"
echo "hosts: {h1: {address: 127.0.0.1, port: ${port}}, h2: {address: 127.0.0.1, port: ${port}}}" \
  >"${work}/inv.yaml"
bench_start_agent

# run BINARY MODE: prints "wall_s cpu_s"
run() {
  local bin="$1" mode="$2" start end
  local args=("127.0.0.1:${port}" run big)
  [[ "${mode}" == prefix ]] && args=(-i "${work}/inv.yaml" -o prefix --no-summary h1,h2 run big)
  start="$(date +%s.%N)"
  /usr/bin/time -f '%U %S' -o "${work}/time" "${bin}" -t 10m "${args[@]}" >/dev/null 2>"${work}/err" \
    || { echo "bench-opsctl-stream.sh: ${bin} failed: $(head -c 300 "${work}/err")" >&2; exit 1; }
  end="$(date +%s.%N)"
  read -r user sys <"${work}/time"
  awk -v s="${start}" -v e="${end}" -v u="${user}" -v y="${sys}" 'BEGIN { printf "%.3f %.3f", e - s, u + y }'
}

printf '%-8s %-7s %-8s %-8s %-14s %s\n' binary mode wall_s MB/s opsctl_cpu_ms/MB ratio_cpu_peer/this
for mode in raw prefix; do
  read -r wall cpu <<<"$(run "${opsctl}" "${mode}")"
  mb="$(awk -v b="${bytes}" -v m="${mode}" 'BEGIN { print (m == "prefix" ? 2 : 1) * b / 1e6 }')"
  awk -v w="${wall}" -v c="${cpu}" -v mb="${mb}" -v m="${mode}" 'BEGIN {
    printf "%-8s %-7s %-8.2f %-8.0f %-14.2f\n", "this", m, w, mb / w, c * 1000 / mb }'
  if [[ -n "${OPSCTL_PEER:-}" ]]; then
    read -r pwall pcpu <<<"$(run "${OPSCTL_PEER}" "${mode}")"
    awk -v w="${pwall}" -v c="${pcpu}" -v mb="${mb}" -v m="${mode}" -v tc="${cpu}" 'BEGIN {
      printf "%-8s %-7s %-8.2f %-8.0f %-14.2f %.2f\n", "peer", m, w, mb / w, c * 1000 / mb,
        (tc > 0 ? c / tc : 0) }'
  fi
done
