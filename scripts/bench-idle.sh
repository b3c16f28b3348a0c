#!/usr/bin/env bash
# Memory per idle authenticated session (issue 13), this build's agent against another build's
# (--peer, e.g. a build of main) side by side. Not a test. Each measurement starts a fresh
# agent, opens one session first (what the agent allocates once for its first client is not per
# session), reads the agent's RSS, opens CONNS sessions with opsagent-loadgen --mode idle
# (handshake, greeting read, then nothing), reads the RSS again: (grown - base) / CONNS. Then
# the probe: one ping on each held session in turn, p50 and p99. Sides alternate, ROUNDS times.
# Usage: scripts/bench-idle.sh [--build DIR] [--peer DIR] [--conns N] [--rounds R]
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
build="${repo_root}/build/release"
peer=""
conns=2000
rounds=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift ;;
    --peer) peer="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-idle.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -z "${peer}" || -x "${peer}/agent/app/opsagent" ]] || {
  echo "bench-idle.sh: no agent in the peer build ${peer}" >&2
  exit 1
}
cmake --build "${build}" --target opsagent-loadgen opsagent -j2 >/dev/null
# shellcheck source=scripts/bench-lib.sh
source "${repo_root}/scripts/bench-lib.sh"
bench_workdir bench-idle.sh "${build}"
ulimit -n $((conns + 1024)) 2>/dev/null || {
  echo "bench-idle.sh: cannot raise the descriptor limit to $((conns + 1024))" >&2
  exit 1
}
c="${work}/certs"
bench_ping_policy
cat >"${work}/agent.yaml" <<AGENT
listen: ["127.0.0.1:${port}"]
tls:
  certificate: ${c}/server.crt
  private_key: ${c}/server.key
  client_ca: ${c}/ca.crt
limits:
  max_clients: $((conns + 16))
  max_clients_per_identity: $((conns + 16))
  max_handshakes: 1024
logging:
  level: warn
audit:
  path: ${work}/audit.jsonl
policy: ${work}/policy.yaml
AGENT
lg=("${build}/bench/opsagent-loadgen" --cert "${c}/alice.crt" --key "${c}/alice.key"
  --ca "${c}/ca.crt" --port "${port}" --proto opsagent --mode idle)
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

measure() {  # label build_dir
  local label="$1" base grown lg_pid
  opsagent="$2/agent/app/opsagent"
  bench_start_agent
  "${lg[@]}" --conns 1 --duration 0 >/dev/null 2>&1
  sleep 0.3
  base="$(rss_kib "${agent_pid}")"
  "${lg[@]}" --conns "${conns}" --duration 2 --probe >"${work}/idle.json" 2>"${work}/idle.err" &
  lg_pid=$!
  for _ in $(seq 1 300); do
    grep -q ready "${work}/idle.err" 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.5
  grown="$(rss_kib "${agent_pid}")"
  wait "${lg_pid}" || echo "bench-idle.sh: ${label}: the load generator failed" >&2
  bench_stop_agent
  local p50 p99
  p50="$(grep -o '"p50_us":[0-9.]*' "${work}/idle.json" | cut -d: -f2)"
  p99="$(grep -o '"p99_us":[0-9.]*' "${work}/idle.json" | cut -d: -f2)"
  awk -v l="${label}" -v b="${base}" -v g="${grown}" -v n="${conns}" -v p50="${p50:-?}" \
    -v p99="${p99:-?}" 'BEGIN { printf "%-6s %8.1f %10s %10s\n", l, (g - b) / n, p50, p99 }'
}

echo "# ${conns} idle sessions; KiB of agent RSS per session; probe ping latency (us)"
printf '%-6s %8s %10s %10s\n' side KiB/sess p50_us p99_us
for _ in $(seq 1 "${rounds}"); do
  measure this "${build}"
  [[ -n "${peer}" ]] && measure peer "${peer}"
done
