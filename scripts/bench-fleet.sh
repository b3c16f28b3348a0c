#!/usr/bin/env bash
# Measure opsctl as a fleet controller: N inventory hosts that all point at one local agent
# (the stand-in fleet), `ping` (the agent spawns nothing), for each N and -j given. Reports
# wall time, opsctl's CPU per target and its peak RSS (from GNU time), and the agent's CPU for
# the same run, so the controller's cost is seen apart from the stand-in fleet's.
#
# Usage: scripts/bench-fleet.sh [BUILD_DIR] [N...]     (default: build/release 1000 10000)
#   BENCH_JOBS="64 256 1000"  concurrency values to try (default: 64 256)
#   OPSCTL_PEER=/path/opsctl  also run this opsctl (e.g. a build of main) right after each row,
#                             against the same agent, and print its numbers as "peer" rows
#   BENCH_RESUME="off warm"   TLS session resumption per row: `off` (--no-resume, every target a
#                             full handshake) and/or `warm` (the session cache, in ${work}/cache,
#                             warmed by a `ping` to every host first) (default: off warm)
# Needs /usr/bin/time (GNU time). Not a test: numbers depend on the machine and its load.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${repo_root}/build/release}"
shift || true
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(1000 10000)
jobs=(${BENCH_JOBS:-64 256})
resume_modes=(${BENCH_RESUME:-off warm})
# shellcheck source=scripts/bench-lib.sh
source "${repo_root}/scripts/bench-lib.sh"
bench_setup bench-fleet.sh "${build}"
bench_ping_policy
cat >"${work}/agent.yaml" <<AGENT
listen: ["127.0.0.1:${port}"]
tls:
  certificate: ${work}/certs/server.crt
  private_key: ${work}/certs/server.key
  client_ca: ${work}/certs/ca.crt
  # The one agent stands in for every host: it keeps a session for each of them, as each real
  # agent would keep the controller's one.
  session_cache_size: 1000000
limits:
  max_clients: 1024
  max_clients_per_identity: 1024
  max_handshakes: 1024
audit:
  path: ${work}/audit.jsonl
policy: ${work}/policy.yaml
AGENT
bench_start_agent

hz="$(getconf CLK_TCK)"

export XDG_CACHE_HOME="${work}/cache"
printf '%-7s %-6s %-6s %-9s %-10s %-16s %-10s %-18s %s\n' targets -j resume wall_s rate/s \
  opsctl_cpu_us/t rss_MiB agent_cpu_us/t result
for n in "${sizes[@]}"; do
  inv="${work}/fleet-${n}.yaml"
  {
    echo "defaults: {port: ${port}}"
    echo "hosts:"
    for i in $(seq 1 "${n}"); do echo "  h${i}: {address: 127.0.0.1}"; done
  } >"${inv}"
  for j in "${jobs[@]}"; do
   for mode in "${resume_modes[@]}"; do
    flags=()
    if [[ "${mode}" == off ]]; then
      flags=(--no-resume)
    else
      # A run over the whole fleet first, as the run before would have done: each host's ticket
      # resumes once, so every host needs its own.
      rm -rf "${XDG_CACHE_HOME}"
      "${opsctl}" -i "${inv}" -j "${j}" all ping >/dev/null
    fi
    for bin in "${opsctl}" ${OPSCTL_PEER:+"${OPSCTL_PEER}"}; do
      # A peer build without --no-resume cannot run the `off` rows: with the cache it would
      # resume every target after the first (they are all this agent) and look much faster.
      if [[ "${bin}" != "${opsctl}" && "${mode}" == off ]] && ! "${bin}" --help 2>&1 | grep -q -- --no-resume; then
        echo "bench-fleet.sh: ${bin} has no --no-resume; its row is left out" >&2
        continue
      fi
      before="$(bench_cpu_ticks "${agent_pid}")"
      start="$(date +%s.%N)"
      /usr/bin/time -f '%U %S %M' -o "${work}/time" \
        "${bin}" "${flags[@]}" -i "${inv}" -j "${j}" --json all ping >"${work}/out" 2>"${work}/err" || true
      end="$(date +%s.%N)"
      after="$(bench_cpu_ticks "${agent_pid}")"
      # GNU time puts "Command exited with non-zero status N" first when hosts failed.
      read -r user sys rss_kib < <(tail -n 1 "${work}/time")
      ok="$(grep -c '"status":"ok"' "${work}/out" || true)"
      label=""
      [[ "${bin}" != "${opsctl}" ]] && label=" (peer)"
      awk -v n="${n}" -v j="${j}" -v m="${mode}" -v s="${start}" -v e="${end}" -v u="${user}" -v y="${sys}" \
        -v r="${rss_kib}" -v a="$((after - before))" -v hz="${hz}" -v ok="${ok}" -v l="${label}" 'BEGIN {
          w = e - s
          printf "%-7d %-6d %-6s %-9.2f %-10.0f %-16.0f %-10.1f %-18.0f %d/%d ok%s\n", n, j, m, w, n / w,
            (u + y) * 1e6 / n, r / 1024, a / hz * 1e6 / n, ok, n, l }'
    done
   done
  done
done
