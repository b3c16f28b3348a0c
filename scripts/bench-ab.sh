#!/usr/bin/env bash
# Two builds of the agent side by side: the same ping load (opsagent-loadgen) against each in
# turn, ROUNDS times, alternating, and the agent's CPU per request from /proc. For "did this
# change make the agent cheaper?" (compare with a build of the commit before). Not a test.
#
# Usage: scripts/bench-ab.sh --peer OLD_BUILD [--build DIR] [--rounds R] [--seconds S]
#                            [--load CONNS:DEPTH ...] [--handshake | --resume] [--builtins all|denied]
#   --peer       the other build directory (its agent/app/opsagent and opsagent-guard are used)
#   --load       one or more loads, e.g. --load 1:1 --load 50:16 (default: 1:1 50:1 50:16)
#   --handshake  each request on a new connection, full TLS handshake (no ticket asked for)
#   --resume     each request on a new connection, resuming the previous one's session
#   --builtins   the agent's audit.builtins (default all: one audit record per ping)
# Output: one JSON line per run: side (this|peer), round, load, requests/s, agent CPU per
# request in microseconds; then per load a "# load" line with the medians of each side and the
# ratio of the median CPU per request (this/peer).
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
build="${repo_root}/build/release"
peer=""
rounds=2
secs=3
loads=()
mode=()
builtins=all
while [[ $# -gt 0 ]]; do
  case "$1" in
    --peer) peer="$2"; shift ;;
    --build) build="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --seconds) secs="$2"; shift ;;
    --load) loads+=("$2"); shift ;;
    --handshake) mode=(--mode handshake) ;;
    --resume) mode=(--mode handshake --resume 1) ;;
    --builtins) builtins="$2"; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-ab.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "${peer}" && -x "${peer}/agent/app/opsagent" ]] || {
  echo "bench-ab.sh: --peer BUILD_DIR with agent/app/opsagent is required" >&2
  exit 2
}
[[ ${#loads[@]} -eq 0 ]] && loads=(1:1 50:1 50:16)
for load in "${loads[@]}"; do
  [[ "${load}" =~ ^[0-9]+:[0-9]+$ ]] || {
    echo "bench-ab.sh: --load wants CONNS:DEPTH, e.g. 50:16, not '${load}'" >&2
    exit 2
  }
done
cmake --build "${build}" --target opsagent-loadgen opsagent opsagent-guard -j2 >/dev/null
# shellcheck source=scripts/bench-lib.sh
source "${repo_root}/scripts/bench-lib.sh"
bench_workdir bench-ab.sh "${build}"
c="${work}/certs"
bench_ping_policy
hz="$(getconf CLK_TCK)"
this_agent="${opsagent}"
for round in $(seq 1 "${rounds}"); do
  for load in "${loads[@]}"; do
    for side in this peer; do
      opsagent="${this_agent}"
      [[ "${side}" == peer ]] && opsagent="${peer}/agent/app/opsagent"
      port=$((20000 + RANDOM % 20000))
      rm -f "${work}/audit.jsonl"
      cat >"${work}/agent.yaml" <<AGENT
listen: ["127.0.0.1:${port}"]
tls: {certificate: ${c}/server.crt, private_key: ${c}/server.key, client_ca: ${c}/ca.crt}
run_as: {allow_root: true}
logging: {level: warn}
audit: {path: ${work}/audit.jsonl, builtins: ${builtins}}
policy: ${work}/policy.yaml
AGENT
      bench_start_agent
      before="$(bench_cpu_ticks "${agent_pid}")"
      result="$("${build}/bench/opsagent-loadgen" --port "${port}" --cert "${c}/alice.crt" \
        --key "${c}/alice.key" --ca "${c}/ca.crt" --request ping --conns "${load%%:*}" \
        --depth "${load#*:}" --duration "${secs}" "${mode[@]}")"
      after="$(bench_cpu_ticks "${agent_pid}")"
      bench_stop_agent
      jq -c --arg side "${side}" --argjson round "${round}" --arg load "${load}" \
        --argjson ticks "$((after - before))" --argjson hz "${hz}" \
        '{side: $side, round: $round, load: $load, req_per_s: (.req_per_s | floor),
          agent_cpu_us_per_req: (($ticks / $hz * 1e6 / ([.requests, 1] | max)) * 100 | floor / 100)}' \
        <<<"${result}" | tee -a "${work}/results.jsonl"
    done
  done
done
opsagent="${this_agent}"
# Medians per load and side, and this build's median CPU per request over the peer's.
python3 - "${work}/results.jsonl" <<'PY'
import collections, json, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["load"], r["side"])].append(r)
for load in dict.fromkeys(load for load, _ in runs):
    cpu = {side: statistics.median(r["agent_cpu_us_per_req"] for r in runs[(load, side)])
           for side in ("this", "peer")}
    rate = {side: statistics.median(r["req_per_s"] for r in runs[(load, side)])
            for side in ("this", "peer")}
    ratio = f"{cpu['this'] / cpu['peer']:.2f}" if cpu["peer"] > 0 else "-"
    print(f"# load {load}: median agent CPU per request this {cpu['this']} us, peer "
          f"{cpu['peer']} us (this/peer {ratio}); median req/s this {rate['this']}, "
          f"peer {rate['peer']}")
PY
