#!/usr/bin/env bash
# Benchmark opsagent against peers measured in the same run, on 127.0.0.1, and write the
# result to docs/benchmarks.md (or --out FILE). Not a test: the numbers depend on the machine
# and its load; only the ratios (opsagent / peer, same client, same run) are meant to be quoted.
#
# Usage: scripts/bench-peers.sh [--quick] [--out FILE] [--build DIR] [--label TEXT]
#   --quick   shorter runs, smaller file, fewer idle sessions (about 4 min instead of ~8 on
#             2 loaded cores; the ssh side of the streaming row is most of it)
#   --out     where to write the Markdown report (default: docs/benchmarks.md)
#   --build   the release build directory (default: build/release; built if missing)
#   --label   a note for the report's heading (e.g. "before coalescing")
#   OPSAGENT_LOADGEN=PATH  use this load generator instead of building bench/ in --build
#
# Pairs, each run 3 times with the sides alternating (median, min-max reported):
#   ping 1 connection, ping 50 connections, ping 50 connections pipelined 16 deep
#     opsagent `ping` vs redis-server (Debian) `PING` over TLS 1.3 with client certificates
#   full mTLS 1.3 handshake + one request, serial: opsagent vs `openssl s_server -rev`
#   streaming a big file: `run cat-big` read by `openssl s_client` vs `ssh cat` (sshd on
#     127.0.0.1 with its own config, aes256-gcm), when openssh-server is installed
#   idle sessions: RSS per authenticated idle session, opsagent vs redis, with 10,000 sessions
#     held (500 with --quick), then the latency of one ping on each of them in turn (p50, p99)
#   whole processes, client CPU included (when openssh-server is installed):
#     one command per process: `opsctl HOST run true` (session cache warm) vs `ssh HOST true`
#       through a running ControlMaster, and `opsctl --no-resume` vs a fresh lean `ssh`
#     the same big file streamed to `opsctl HOST run cat-big` vs `ssh cat`
#     a 50-host fan-out of `run true` (50 inventory hosts, all this agent): `opsctl -j 50` vs
#       `parallel-ssh -p 50` (pssh, installed if missing) against the local sshd
#     `hash sha256` of a cached file (1 GiB, 256 MiB with --quick) vs `openssl dgst -sha256`
# Also draws the ratios as docs/benchmarks.svg with gnuplot (gnuplot-nox, installed if missing).
# Server CPU per operation comes from /proc/PID/stat (utime+stime, plus waited-for children for
# the streaming row) before and after each run. Needs root only to apt-get install the peers.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
quick=0
out="${repo_root}/docs/benchmarks.md"
build="${repo_root}/build/release"
label=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --build) build="$2"; shift ;;
    --label) label="$2"; shift ;;
    -h | --help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-peers.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

if ((quick)); then
  secs=2; stream_mib=128; idle_n=500; hs_secs=2; hash_mib=256; oneshot_n=20
else
  secs=5; stream_mib=256; idle_n=10000; hs_secs=4; hash_mib=1024; oneshot_n=50
fi
reps=3

need_pkg() {  # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  [[ -x "/usr/sbin/$1" ]] && return 0
  if [[ "$(id -u)" == 0 ]]; then
    echo "bench-peers.sh: installing $2 from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null
  else
    echo "bench-peers.sh: needs $2 (apt-get install $2)" >&2
    exit 1
  fi
}
need_pkg redis-server redis-server
need_pkg openssl openssl
need_pkg gnuplot gnuplot-nox
need_pkg sshd openssh-server  # the streaming, one-command and fan-out rows' peer
need_pkg parallel-ssh pssh
redis-server --help 2>&1 | grep -q tls || true  # Debian builds it with TLS (checked at start)

[[ -x "${build}/agent/app/opsagent" ]] || OPSAGENT_SKIP_DEPS=1 "${repo_root}/scripts/build.sh" release
loadgen="${OPSAGENT_LOADGEN:-${build}/bench/opsagent-loadgen}"
[[ -n "${OPSAGENT_LOADGEN:-}" ]] || cmake --build "${build}" --target opsagent-loadgen -j2 >/dev/null
opsagent="${build}/agent/app/opsagent"
opsctl="${build}/agent/app/opsctl"

work="$(mktemp -d /tmp/opsagent-bench-XXXXXX)"
chmod 755 "${work}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    if kill -0 "${p}" 2>/dev/null; then kill -TERM "${p}" 2>/dev/null || true; fi
  done
  for p in "${pids[@]}"; do wait "${p}" 2>/dev/null || true; done
  rm -rf -- "${work}"
}
trap cleanup EXIT

"${repo_root}/scripts/gen-dev-certs.sh" "${work}/certs" >/dev/null
c="${work}/certs"
# Ports below the ephemeral range (clients' own ports there make bind fail), each used once.
used_ports=" "
pick_port() {  # sets port: one nothing listens on now and this run has not used
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ "${used_ports}" == *" ${port} "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null || break
  done
  used_ports+="${port} "
}
pick_port; agent_port="${port}"
pick_port; redis_port="${port}"
pick_port; sserver_port="${port}"
pick_port; sserver_resume_port="${port}"
pick_port; ssh_port="${port}"

# --- the data for the streaming row: log-like lines --------------------------------------------
big="${work}/big.log"
awk -v n=$((stream_mib * 1024 * 1024 / 100)) 'BEGIN {
  for (i = 0; i < n; i++)
    printf "Dec  2 18:%02d:%02d web1 app[%d]: request %09d served in 12 ms, status 200 OK ....\n",
      i % 60, i % 60, 1000 + i % 900, i }' >"${big}"
big_bytes="$(stat -c %s "${big}")"
hashed="${work}/hashed.bin"  # for the hash row; read once so that it is cached
head -c "$((hash_mib * 1048576))" /dev/zero >"${hashed}"
cat "${hashed}" >/dev/null
hashed_bytes="$(stat -c %s "${hashed}")"

# --- opsagent ------------------------------------------------------------------------------------
cat >"${work}/policy.yaml" <<POLICY
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping, run, hash]
    run: [cat-big, "true"]
    hash:
      algorithms: [sha256]
      paths: ["${work}/hashed.bin"]
commands:
  cat-big:
    argv: [/usr/bin/cat, ${big}]
    timeout: 10m
    max_output: 1GiB
  "true":
    argv: [/bin/true]
POLICY
cat >"${work}/agent.yaml" <<AGENT
listen: ["127.0.0.1:${agent_port}"]
tls:
  certificate: ${c}/server.crt
  private_key: ${c}/server.key
  client_ca: ${c}/ca.crt
limits:
  max_clients: 10000
  max_clients_per_identity: 10000
  max_handshakes: 1024
  max_children: 64  # the fan-out row: 50 "hosts" that are all this one agent
run_as:
  allow_root: true
logging:
  level: warn
audit:
  path: ${work}/audit.jsonl
policy: ${work}/policy.yaml
AGENT
chmod 600 "${work}/policy.yaml" "${work}/agent.yaml"
ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || true
start_agent() {  # config; sets started_pid
  "${opsagent}" --config "$1" 2>>"${work}/agent.log" &
  started_pid=$!
  pids+=("${started_pid}")
}
start_agent "${work}/agent.yaml"
agent_pid="${started_pid}"

# --- redis ---------------------------------------------------------------------------------------
start_redis() {  # port; sets started_pid
  redis-server --port 0 --tls-port "$1" --bind 127.0.0.1 \
    --tls-cert-file "${c}/server.crt" --tls-key-file "${c}/server.key" \
    --tls-ca-cert-file "${c}/ca.crt" --tls-auth-clients yes --tls-protocols TLSv1.3 \
    --save '' --appendonly no --maxclients 10000 --dir "${work}" \
    --logfile "${work}/redis-$1.log" &
  started_pid=$!
  pids+=("${started_pid}")
}
start_redis "${redis_port}"
redis_pid="${started_pid}"

# --- openssl s_server (handshake peer) ---------------------------------------------------------
openssl s_server -quiet -rev -accept "127.0.0.1:${sserver_port}" -tls1_3 -no_ticket \
  -cert "${c}/server.crt" -key "${c}/server.key" -CAfile "${c}/ca.crt" -Verify 1 \
  -verify_return_error >"${work}/s_server.log" 2>&1 &
sserver_pid=$!
pids+=("${sserver_pid}")
# The same with TLS 1.3 tickets, the peer of the resumed-handshake row.
openssl s_server -quiet -rev -accept "127.0.0.1:${sserver_resume_port}" -tls1_3 \
  -cert "${c}/server.crt" -key "${c}/server.key" -CAfile "${c}/ca.crt" -Verify 1 \
  -verify_return_error >"${work}/s_server_resume.log" 2>&1 &
sserver_resume_pid=$!
pids+=("${sserver_resume_pid}")

# --- sshd (streaming peer), if installed ---------------------------------------------------------
ssh_ok=0
sshd_bin="$(command -v sshd || echo /usr/sbin/sshd)"
if [[ -x "${sshd_bin}" ]] && command -v ssh >/dev/null; then
  mkdir -p /run/sshd "${work}/ssh"
  ssh-keygen -q -t ed25519 -N '' -f "${work}/ssh/host" >/dev/null
  ssh-keygen -q -t ed25519 -N '' -f "${work}/ssh/client" >/dev/null
  cp "${work}/ssh/client.pub" "${work}/ssh/authorized_keys"
  chmod 700 "${work}/ssh"
  cat >"${work}/ssh/sshd_config" <<SSHD
ListenAddress 127.0.0.1:${ssh_port}
HostKey ${work}/ssh/host
AuthorizedKeysFile ${work}/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Ciphers aes256-gcm@openssh.com
PidFile none
# The fan-out row opens 50 connections at once; the default (10:30:100) would drop some.
MaxStartups 200
SSHD
  "${sshd_bin}" -D -e -f "${work}/ssh/sshd_config" 2>"${work}/sshd.log" &
  sshd_pid=$!
  pids+=("${sshd_pid}")
  ssh_ok=1
fi

wait_port() {  # port
  for _ in $(seq 1 300); do  # 30 s: the machine may be loaded
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-peers.sh: nothing listens on $1; last lines of the logs:" >&2
  tail -n 3 "${work}"/*.log >&2 || true
  return 1
}
wait_port "${agent_port}"
wait_port "${redis_port}"
wait_port "${sserver_port}"
if ((ssh_ok)); then wait_port "${ssh_port}" || ssh_ok=0; fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_all() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hz="$(getconf CLK_TCK)"
results="${work}/results.tsv"  # row side rep rate cpu_us_per_op
: >"${results}"
lg=("${loadgen}" --cert "${c}/alice.crt" --key "${c}/alice.key" --ca "${c}/ca.crt")
commands="${work}/commands.txt"
: >"${commands}"

note_command() {  # row side command...
  local row="$1" side="$2"
  shift 2
  grep -q "^${row}	${side}	" "${commands}" || printf '%s\t%s\t%s\n' "${row}" "${side}" "$*" >>"${commands}"
}

# One load-generator run against server `pid`; appends rate and server CPU per request.
measure_lg() {  # row side rep pid args...
  local row="$1" side="$2" rep="$3" pid="$4"
  shift 4
  note_command "${row}" "${side}" "opsagent-loadgen $*"
  local before after json
  before="$(ticks "${pid}")"
  json="$("${lg[@]}" "$@")"
  after="$(ticks "${pid}")"
  python3 - "${row}" "${side}" "${rep}" "$((after - before))" "${hz}" "${json}" >>"${results}" <<'PY'
import json, sys
row, side, rep, ticks, hz, doc = sys.argv[1:]
d = json.loads(doc)
n = max(d["requests"], 1)
cpu_us = int(ticks) / int(hz) * 1e6 / n
print(f"{row}\t{side}\t{rep}\t{d['req_per_s']:.1f}\t{cpu_us:.2f}\t{d['p50_us']}\t{d['p99_us']}\t{d['errors']}")
PY
}

# Streams the big file once; appends MB/s and server CPU per MiB.
measure_stream() {  # side rep
  local side="$1" rep="$2" pid before after start end bytes
  if [[ "${side}" == opsagent ]]; then
    pid="${agent_pid}"
    note_command stream opsagent "printf 'run cat-big\\nexit\\n' | openssl s_client -quiet -connect 127.0.0.1:PORT -cert alice.crt -key alice.key -CAfile ca.crt | wc -c"
    before="$(ticks_all "${pid}")"
    start="$(date +%s.%N)"
    bytes="$(printf 'run cat-big\nexit\n' | openssl s_client -quiet -connect "127.0.0.1:${agent_port}" \
      -cert "${c}/alice.crt" -key "${c}/alice.key" -CAfile "${c}/ca.crt" 2>/dev/null | wc -c)"
  else
    pid="${sshd_pid}"
    note_command stream ssh "ssh -c aes256-gcm@openssh.com -p PORT root@127.0.0.1 cat big.log | wc -c"
    before="$(ticks_all "${pid}")"
    start="$(date +%s.%N)"
    bytes="$(ssh -q -c aes256-gcm@openssh.com -p "${ssh_port}" -i "${work}/ssh/client" \
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
      root@127.0.0.1 cat "${big}" | wc -c)"
  fi
  end="$(date +%s.%N)"
  sleep 0.2  # let the server reap the session's processes, so their CPU is counted
  after="$(ticks_all "${pid}")"
  awk -v r=stream -v s="${side}" -v rep="${rep}" -v st="${start}" -v en="${end}" -v b="${bytes}" \
    -v t="$((after - before))" -v hz="${hz}" -v want="${big_bytes}" 'BEGIN {
      e = (b + 0 >= want + 0) ? 0 : 1
      printf "%s\t%s\t%s\t%.1f\t%.0f\t0\t0\t%d\n", r, s, rep, b / (en - st) / 1e6,
        t / hz * 1e6 / (b / 1048576), e }' >>"${results}"
}

# Starts a fresh server (memory freed by earlier rows would hide the growth), opens `idle_n`
# authenticated sessions, and records the RSS growth per session; then stops that server.
measure_idle() {  # side rep
  local side="$1" rep="$2" pid base grown proto
  pick_port
  if [[ "${side}" == opsagent ]]; then
    sed "s/127.0.0.1:${agent_port}/127.0.0.1:${port}/" "${work}/agent.yaml" >"${work}/idle.yaml"
    chmod 600 "${work}/idle.yaml"
    start_agent "${work}/idle.yaml"
    proto=opsagent
  else
    start_redis "${port}"
    proto=redis
  fi
  pid="${started_pid}"
  wait_port "${port}"
  note_command idle "${side}" "opsagent-loadgen --mode idle --proto ${proto} --conns ${idle_n} --probe"
  # One session first: what every server allocates once for its first client is not per session.
  "${lg[@]}" --port "${port}" --proto "${proto}" --mode idle --conns 1 --duration 0 >/dev/null 2>&1
  sleep 0.3
  base="$(rss_kib "${pid}")"
  "${lg[@]}" --port "${port}" --proto "${proto}" --mode idle --conns "${idle_n}" --duration 3 --probe \
    >"${work}/idle.json" 2>"${work}/idle.err" &
  local lg_pid=$!
  for _ in $(seq 1 200); do
    grep -q ready "${work}/idle.err" 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.5
  grown="$(rss_kib "${pid}")"
  local errors=0
  wait "${lg_pid}" || errors=1
  # The probe: p50 and p99 of one ping per held session, sent one at a time after the RSS reading.
  local p50 p99
  p50="$(grep -o '"p50_us":[0-9.]*' "${work}/idle.json" | cut -d: -f2)"
  p99="$(grep -o '"p99_us":[0-9.]*' "${work}/idle.json" | cut -d: -f2)"
  awk -v s="${side}" -v rep="${rep}" -v b="${base}" -v g="${grown}" -v n="${idle_n}" \
    -v p50="${p50:-0}" -v p99="${p99:-0}" -v e="${errors}" 'BEGIN {
    printf "idle\t%s\t%s\t%.2f\t0\t%s\t%s\t%d\n", s, rep, (g - b) / n, p50, p99, e }' >>"${results}"
  kill -TERM "${pid}"
  wait "${pid}" 2>/dev/null || true
}

# --- whole processes: client start-up and CPU included ---------------------------------------
after_runs=()
octl=("${opsctl}" --cert "${c}/alice.crt" --key "${c}/alice.key" --ca "${c}/ca.crt")
export XDG_CACHE_HOME="${work}/cache"  # opsctl's session cache
sshc=(ssh -q -p "${ssh_port}" -i "${work}/ssh/client" -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o BatchMode=yes)
fleet="${work}/fleet.yaml"  # 50 inventory hosts, all this agent
{
  echo "defaults: {port: ${agent_port}}"
  echo "hosts:"
  for i in $(seq 1 50); do echo "  h${i}: {address: 127.0.0.1}"; done
} >"${fleet}"
for i in $(seq 1 50); do echo "127.0.0.1:${ssh_port}"; done >"${work}/pssh-hosts"

# Runs `command...` `runs` times in a row in a subshell and appends one result row: `units`
# per run (1 for commands, bytes for streams, hosts for a fan-out) over the wall time, as
# value/s (MB/s when `per` is MB), the server's CPU (`pid` with its reaped children) and the
# client's (every process the subshell waited for) per unit (per MiB when `per` is MB).
# `after_runs`, when set (an array), runs before the server's CPU is read again (to end a
# connection whose server process is reaped only then).
measure_runs() {  # row side rep pid runs units per display command...
  local row="$1" side="$2" rep="$3" pid="$4" runs="$5" units="$6" per="$7" display="$8"
  shift 8
  note_command "${row}" "${side}" "${display}"
  local before after
  before="$(ticks_all "${pid}")"
  # In the subshell: wall time, failed runs and the children's CPU ticks, on one line.
  read -r start end failed client < <(
    me="${BASHPID}"  # this subshell: it waits for every run, so their CPU is in its cutime
    st="$(date +%s.%N)"
    f=0
    for _ in $(seq 1 "${runs}"); do "$@" >/dev/null 2>&1 || f=$((f + 1)); done
    en="$(date +%s.%N)"
    echo "${st} ${en} ${f} $(awk '{print $16 + $17}' "/proc/${me}/stat")"
  )
  if ((${#after_runs[@]})); then "${after_runs[@]}" 2>/dev/null || true; fi
  sleep 0.2  # let the server reap what it spawned, so that its CPU is counted
  after="$(ticks_all "${pid}")"
  awk -v r="${row}" -v s="${side}" -v rep="${rep}" -v st="${start}" -v en="${end}" \
    -v n="$((runs * units))" -v per="${per}" -v t="$((after - before))" -v c="${client}" \
    -v hz="${hz}" -v e="${failed}" 'BEGIN {
      w = en - st; value = n / w; div = n
      if (per == "MB") { value = n / 1e6 / w; div = n / 1048576 }
      printf "%s\t%s\t%s\t%.1f\t%.0f\t0\t0\t%d\t%.0f\n", r, s, rep, value,
        t / hz * 1e6 / div, e, c / hz * 1e6 / div }' >>"${results}"
}

measure_oneshot() {  # side rep
  local side="$1" rep="$2" target="127.0.0.1:${agent_port}"
  case "${side}" in
    opsagent)
      "${octl[@]}" "${target}" ping >/dev/null  # the session cache holds this agent
      measure_runs oneshot opsagent "${rep}" "${agent_pid}" "${oneshot_n}" 1 op \
        "opsctl 127.0.0.1:PORT run true   # session cache warm" "${octl[@]}" "${target}" run true ;;
    opsagent_fresh)
      measure_runs oneshot_fresh opsagent "${rep}" "${agent_pid}" "${oneshot_n}" 1 op \
        "opsctl --no-resume 127.0.0.1:PORT run true" "${octl[@]}" --no-resume "${target}" run true ;;
    ssh_cm)
      local cm=(-o ControlPath="${work}/ssh/cm-%C")
      "${sshc[@]}" "${cm[@]}" -o ControlMaster=yes -o ControlPersist=yes -N -f root@127.0.0.1
      # The master's sshd child is reaped (and its CPU counted) once the master exits.
      after_runs=("${sshc[@]}" "${cm[@]}" -O exit root@127.0.0.1)
      measure_runs oneshot ssh_controlmaster "${rep}" "${sshd_pid}" "${oneshot_n}" 1 op \
        "ssh -o ControlPath=CM -p PORT root@127.0.0.1 true   # master running" \
        "${sshc[@]}" "${cm[@]}" root@127.0.0.1 true
      after_runs=() ;;
    ssh)
      measure_runs oneshot_fresh ssh "${rep}" "${sshd_pid}" "${oneshot_n}" 1 op \
        "ssh -p PORT root@127.0.0.1 true" "${sshc[@]}" root@127.0.0.1 true ;;
  esac
}

measure_client_stream() {  # side rep
  if [[ "$1" == opsagent ]]; then
    measure_runs stream_opsctl opsagent "$2" "${agent_pid}" 1 "${big_bytes}" MB \
      "opsctl 127.0.0.1:PORT run cat-big >/dev/null" "${octl[@]}" "127.0.0.1:${agent_port}" \
      run cat-big
  else
    measure_runs stream_opsctl ssh "$2" "${sshd_pid}" 1 "${big_bytes}" MB \
      "ssh -c aes256-gcm@openssh.com -p PORT root@127.0.0.1 cat big.log >/dev/null" \
      "${sshc[@]}" -c aes256-gcm@openssh.com root@127.0.0.1 cat "${big}"
  fi
}

measure_fanout() {  # side rep
  if [[ "$1" == opsagent ]]; then
    measure_runs fanout50 opsagent "$2" "${agent_pid}" 1 50 host \
      "opsctl -i fleet.yaml -j 50 all run true   # 50 hosts, all this agent" \
      "${octl[@]}" -i "${fleet}" -j 50 --no-summary all run true
  else
    measure_runs fanout50 parallel-ssh "$2" "${sshd_pid}" 1 50 host \
      "parallel-ssh -p 50 -h hosts -l root -x '-i KEY -q' true   # 50 x 127.0.0.1:PORT" \
      parallel-ssh -p 50 -h "${work}/pssh-hosts" -l root -O StrictHostKeyChecking=no \
      -O UserKnownHostsFile=/dev/null -O BatchMode=yes -x "-i ${work}/ssh/client -q" true
  fi
}

measure_hash() {  # side rep
  if [[ "$1" == opsagent ]]; then
    measure_runs hash opsagent "$2" "${agent_pid}" 1 "${hashed_bytes}" MB \
      "opsctl 127.0.0.1:PORT hash sha256 hashed.bin   # cached" \
      "${octl[@]}" "127.0.0.1:${agent_port}" hash sha256 "${hashed}"
  else
    # No server: its CPU column reads the idle agent's (about 0); the client's is openssl's.
    measure_runs hash openssl_dgst "$2" "${agent_pid}" 1 "${hashed_bytes}" MB \
      "openssl dgst -sha256 hashed.bin   # cached, local" openssl dgst -sha256 "${hashed}"
  fi
}

ping_args() {  # side
  if [[ "$1" == opsagent ]]; then echo "--port ${agent_port} --proto opsagent"
  else echo "--port ${redis_port} --proto redis"; fi
}

echo "bench-peers.sh: ${reps} rounds; results in ${out}" >&2
for rep in $(seq 1 "${reps}"); do
  # Alternate which side goes first in each round.
  if ((rep % 2)); then sides=(opsagent peer); else sides=(peer opsagent); fi
  for side in "${sides[@]}"; do
    s=opsagent; p="${agent_pid}"
    [[ "${side}" == peer ]] && { s=redis; p="${redis_pid}"; }
    # shellcheck disable=SC2046
    measure_lg ping1 "${s}" "${rep}" "${p}" $(ping_args "${s}") --conns 1 --duration "${secs}"
    # shellcheck disable=SC2046
    measure_lg ping50 "${s}" "${rep}" "${p}" $(ping_args "${s}") --conns 50 --duration "${secs}"
    # shellcheck disable=SC2046
    measure_lg ping50x16 "${s}" "${rep}" "${p}" $(ping_args "${s}") --conns 50 --depth 16 \
      --duration "${secs}"
  done
  for side in "${sides[@]}"; do
    if [[ "${side}" == opsagent ]]; then
      measure_lg handshake opsagent "${rep}" "${agent_pid}" --port "${agent_port}" \
        --proto opsagent --mode handshake --duration "${hs_secs}"
    else
      measure_lg handshake s_server "${rep}" "${sserver_pid}" --port "${sserver_port}" \
        --proto line --mode handshake --duration "${hs_secs}"
    fi
  done
  for side in "${sides[@]}"; do
    if [[ "${side}" == opsagent ]]; then
      measure_lg handshake_resumed opsagent "${rep}" "${agent_pid}" --port "${agent_port}" \
        --proto opsagent --mode handshake --resume 1 --duration "${hs_secs}"
    else
      measure_lg handshake_resumed s_server "${rep}" "${sserver_resume_pid}" \
        --port "${sserver_resume_port}" --proto line --mode handshake --resume 1 \
        --duration "${hs_secs}"
    fi
  done
  for side in "${sides[@]}"; do
    if [[ "${side}" == opsagent ]]; then measure_stream opsagent "${rep}"
    elif ((ssh_ok)); then measure_stream ssh "${rep}"; fi
  done
  for side in "${sides[@]}"; do
    s=opsagent; [[ "${side}" == peer ]] && s=redis
    measure_idle "${s}" "${rep}"
  done
  for side in "${sides[@]}"; do
    if [[ "${side}" == opsagent ]]; then measure_hash opsagent "${rep}"
    else measure_hash openssl "${rep}"; fi
  done
  if ((ssh_ok)); then
    for side in "${sides[@]}"; do
      if [[ "${side}" == opsagent ]]; then
        measure_oneshot opsagent "${rep}"
        measure_oneshot opsagent_fresh "${rep}"
        measure_client_stream opsagent "${rep}"
        measure_fanout opsagent "${rep}"
      else
        measure_oneshot ssh_cm "${rep}"
        measure_oneshot ssh "${rep}"
        measure_client_stream ssh "${rep}"
        measure_fanout ssh "${rep}"
      fi
    done
  fi
  echo "bench-peers.sh: round ${rep} done" >&2
done

# --- the report ----------------------------------------------------------------------------------
versions="opsagent $(git -C "${repo_root}" rev-parse --short HEAD)$(git -C "${repo_root}" diff --quiet || echo '+dirty')"
versions+="; $(redis-server --version | awk '{print $1, $2, $3}')"
versions+="; $(openssl version)"
((ssh_ok)) && versions+="; $(ssh -V 2>&1)"
versions+="; $(uname -sr); $(nproc) cores"
python3 "${repo_root}/bench/report.py" "${results}" "${commands}" "${out}" \
  --versions "${versions}" --quick "${quick}" --label "${label}" --ssh "${ssh_ok}" \
  --params "duration ${secs} s per run (handshake ${hs_secs} s), stream file ${stream_mib} MiB (${big_bytes} bytes), ${idle_n} idle sessions"
cp "${results}" "${out%.md}.tsv"
echo "bench-peers.sh: wrote ${out} and ${out%.md}.tsv" >&2
