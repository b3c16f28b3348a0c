#!/usr/bin/env bash
# The audit writer's cost (issue 11). Not a test. Two parts, each a side-by-side comparison:
#  1. opsagent-bench-audit: records/s and CPU per record of the writer (encoder + group commit)
#     against the writer it replaced (nlohmann::json + one write(2) per record under a mutex),
#     RECORDS records from 1 and from 4 producer threads.
#  2. the real agent under a ping load (opsagent-loadgen, CONNS connections, default 8, DEPTH
#     pipelined pings each): agent CPU per ping with `audit.builtins: all` (one record per
#     ping) and `denied` (no record); the difference is the agent CPU one audit record costs
#     (the median over ROUNDS is printed last). Each run also reports the writer thread's own
#     CPU per ping, the records it wrote per wake-up and how often the other threads were
#     preempted. With --peer, the agent of another build (e.g. the previous commit's) runs the
#     same load, alternating with this one, ROUNDS times. With --rate R, the load generator
#     sends R pings/s in all (paced, still DEPTH deep at most) instead of as fast as replies
#     come: every agent then runs at the same load and the same batching, which takes most of
#     the run-to-run noise out of the CPU per record (at saturation it follows the throughput
#     each run happens to reach). R must stay below what the agent sustains with `all`.
# With --ship, the cost of shipping copies to journald and syslog instead: part 1 runs the
# default writer with shipping off, to journald, to syslog and to both, each socket drained by
# a receiver thread; part 2 runs the agent (`builtins: all`) without shipping and shipping to
# both, each socket drained by a python3 receiver (a stand-in daemon). Copies the receivers
# cannot take in time are dropped and counted (sent/dropped in the output).
# Usage: scripts/bench-audit.sh [--records N] [--seconds S] [--conns C] [--depth D] [--rounds R]
#                               [--agent-only] [--build DIR] [--peer DIR] [--ship] [--rate R]
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
build="${repo_root}/build/release"
peer=""
records=1000000
secs=5
conns=8
depth=16
rounds=1
rate=""
agent_only=0
ship=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --records) records="$2"; shift ;;
    --seconds) secs="$2"; shift ;;
    --conns) conns="$2"; shift ;;
    --depth) depth="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    --agent-only) agent_only=1 ;;
    --build) build="$2"; shift ;;
    --peer) peer="$2"; shift ;;
    --ship) ship=1 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-audit.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -z "${peer}" || -x "${peer}/agent/app/opsagent" ]] || {
  echo "bench-audit.sh: no agent in the peer build ${peer}" >&2
  exit 1
}
cmake --build "${build}" --target opsagent-bench-audit opsagent-loadgen opsagent -j2 >/dev/null
# shellcheck source=scripts/bench-lib.sh
source "${repo_root}/scripts/bench-lib.sh"
bench_workdir bench-audit.sh "${build}"

if [[ "${agent_only}" -eq 0 ]]; then
  echo "# 1. writer alone, ${records} records (same disk: ${work})"
  for threads in 1 4; do
    rm -f "${work}"/*.jsonl
    if [[ "${ship}" -eq 1 ]]; then
      "${build}/bench/opsagent-bench-audit" "${work}" "${records}" "${threads}" ship
    else
      "${build}/bench/opsagent-bench-audit" "${work}" "${records}" "${threads}"
    fi
  done
fi

echo "# 2. agent under a ping load (${conns} connections, depth ${depth}${rate:+, ${rate} pings/s}), ${secs} s each"
c="${work}/certs"
bench_ping_policy
clock_ticks="$(getconf CLK_TCK)"
# A stand-in daemon: binds an AF_UNIX datagram socket and drains it until killed.
start_receiver() {
  python3 - "$1" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    s.recv(262144)
PY
  receivers+=("$!")
}
receivers=()
runs="all denied"
[[ "${ship}" -eq 1 ]] && runs="all all+ship"
agents=("this:${opsagent}")
[[ -n "${peer}" ]] && agents+=("peer:${peer}/agent/app/opsagent")
this_agent="${opsagent}"
for round in $(seq 1 "${rounds}"); do
  for entry in "${agents[@]}"; do
    opsagent="${entry#*:}"
    for run in ${runs}; do
      builtins="${run%+ship}"
      shipping=""
      if [[ "${run}" == *+ship ]]; then
        rm -f "${work}/journal.sock" "${work}/log.sock"
        start_receiver "${work}/journal.sock"
        start_receiver "${work}/log.sock"
        shipping=", journald: {enabled: true, socket: ${work}/journal.sock}"
        shipping+=", syslog: {enabled: true, socket: ${work}/log.sock}"
      fi
      port=$((20000 + RANDOM % 20000))  # a fresh one per agent
      rm -f "${work}/audit-${run}.jsonl"
      cat >"${work}/agent.yaml" <<AGENT
listen: ["127.0.0.1:${port}"]
tls: {certificate: ${c}/server.crt, private_key: ${c}/server.key, client_ca: ${c}/ca.crt}
run_as: {allow_root: true}
logging: {level: warn}
audit: {path: ${work}/audit-${run}.jsonl, builtins: ${builtins}${shipping}}
policy: ${work}/policy.yaml
metrics: {listen: "127.0.0.1:$((port + 1))"}
AGENT
      bench_start_agent
      before="$(bench_cpu_ticks "${agent_pid}")"
      read -r w_ticks0 w_wakes0 _ <<<"$(bench_thread_counters "${agent_pid}" audit-writer)"
      read -r _ _ io_pre0 <<<"$(bench_thread_counters "${agent_pid}" '!audit-writer')"
      result="$("${build}/bench/opsagent-loadgen" --port "${port}" --cert "${c}/alice.crt" \
        --key "${c}/alice.key" --ca "${c}/ca.crt" --request ping --conns "${conns}" --depth "${depth}" \
        --duration "${secs}" ${rate:+--rate "${rate}"})"
      after="$(bench_cpu_ticks "${agent_pid}")"
      read -r w_ticks1 w_wakes1 _ <<<"$(bench_thread_counters "${agent_pid}" audit-writer)"
      read -r _ _ io_pre1 <<<"$(bench_thread_counters "${agent_pid}" '!audit-writer')"
      shipped="$(curl -s "http://127.0.0.1:$((port + 1))/metrics" |
        awk '/^opsagent_audit_shipped_total/ && $2 > 0 {sub(/opsagent_audit_shipped_total/, "");
             gsub(/"/, ""); printf "%s%s=%s", sep, $1, $2; sep=" "}')"
      bench_stop_agent
      for r in "${receivers[@]}"; do kill "${r}" 2>/dev/null || true; done
      receivers=()
      requests="$(jq -r .requests <<<"${result}")"
      lines="$(wc -l <"${work}/audit-${run}.jsonl")"
      python3 - "${entry%%:*}" "${round}" "${run}" "${requests}" "${lines}" \
        "$((after - before))" "${clock_ticks}" "$((w_ticks1 - w_ticks0))" \
        "$((w_wakes1 - w_wakes0))" "$((io_pre1 - io_pre0))" "${shipped}" <<'PY' | tee -a "${work}/rounds.jsonl"
import sys
agent, rnd, b = sys.argv[1], sys.argv[2], sys.argv[3]
req, lines, ticks, hz, w_ticks, w_wakes, io_pre = (int(v) for v in sys.argv[4:11])
req = max(req, 1)
print(f'{{"agent":"{agent}","round":{rnd},"builtins":"{b}","pings":{req},'
      f'"audit_lines":{lines},"agent_cpu_us_per_ping":{ticks / hz * 1e6 / req:.2f},'
      f'"writer_cpu_us_per_ping":{w_ticks / hz * 1e6 / req:.2f},'
      f'"records_per_writer_wakeup":{lines / max(w_wakes, 1):.1f},'
      f'"other_threads_preempted":{io_pre},"shipped":"{sys.argv[11]}"}}')
PY
    done
  done
done
opsagent="${this_agent}"
python3 - "${work}/rounds.jsonl" "${ship}" <<'PY'
import collections, json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
second = "all+ship" if sys.argv[2] == "1" else "denied"
what = "shipping CPU per record" if second == "all+ship" else "audit CPU per record"
cost = collections.defaultdict(list)
by_round = collections.defaultdict(dict)
for r in rows:
    by_round[(r["agent"], r["round"])][r["builtins"]] = r["agent_cpu_us_per_ping"]
for (agent, _), runs in sorted(by_round.items()):
    if "all" in runs and second in runs:
        cost[agent].append(abs(runs[second] - runs["all"]))
for agent, values in cost.items():
    print(f"# {agent}: {what} (agent CPU per ping, {second} against all): median "
          f"{statistics.median(values):.2f} us, min {min(values):.2f}, max {max(values):.2f}, "
          f"{len(values)} rounds")
PY
