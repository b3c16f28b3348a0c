# Shared set-up of the benchmarks that run one agent (bench-fleet.sh, bench-opsctl-stream.sh,
# bench-audit.sh, bench-idle.sh, bench-ab.sh); sourced, not run.
# bench_workdir NAME BUILD_DIR: makes ${work} (removed on exit, with the agent stopped), dev
# certificates in ${work}/certs and a ${port} for the agent.
# bench_setup NAME BUILD_DIR: bench_workdir, plus the checks and the certificate variables of
# the opsctl benchmarks (opsctl built, GNU time installed).
# The caller writes ${work}/policy.yaml (bench_ping_policy: alice may `ping`, nothing else) and
# ${work}/agent.yaml, then calls bench_start_agent (and bench_stop_agent to run another one).

bench_workdir() {
  local name="$1"
  build="$2"
  opsagent="${build}/agent/app/opsagent"
  [[ -x "${opsagent}" ]] || { echo "${name}: build first (${build})" >&2; exit 1; }
  work="$(mktemp -d "/tmp/${name%.sh}-XXXXXX")"
  agent_pid=""
  trap bench_cleanup EXIT
  "${repo_root}/scripts/gen-dev-certs.sh" "${work}/certs" >/dev/null
  port=$((20000 + RANDOM % 20000))
}

bench_setup() {
  local name="$1"
  bench_workdir "$@"
  opsctl="${build}/agent/app/opsctl"
  [[ -x "${opsctl}" ]] || { echo "${name}: build first (${build})" >&2; exit 1; }
  [[ -x /usr/bin/time ]] || { echo "${name}: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
  export OPSCTL_CERT="${work}/certs/alice.crt" OPSCTL_KEY="${work}/certs/alice.key" \
    OPSCTL_CA="${work}/certs/ca.crt"
}

# ${work}/policy.yaml: the certificate CN alice is principal alice, who may `ping` only.
bench_ping_policy() {
  cat >"${work}/policy.yaml" <<POLICY
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping]
POLICY
}

# CPU ticks (utime + stime, in CLK_TCK units) that process $1 (or thread PID/task/TID) has used
# so far.
bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# "TICKS WAKEUPS PREEMPTIONS" of the agent's threads named $2 (e.g. audit-writer; "!NAME": all
# but those), summed: CPU ticks, voluntary context switches (each a sleep that ended in a
# wake-up) and involuntary ones (preempted).
bench_thread_counters() {
  local task comm ticks=0 vol=0 invol=0
  for task in /proc/"$1"/task/*; do
    comm="$(cat "${task}/comm" 2>/dev/null)" || continue
    if [[ "$2" == !* ]]; then
      [[ "${comm}" != "${2#!}" ]] || continue
    else
      [[ "${comm}" == "$2" ]] || continue
    fi
    ticks=$((ticks + $(bench_cpu_ticks "$1/task/${task##*/}")))
    vol=$((vol + $(awk '/^voluntary_ctxt_switches/ {print $2}' "${task}/status")))
    invol=$((invol + $(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "${task}/status")))
  done
  echo "${ticks} ${vol} ${invol}"
}

# Stops the agent started by bench_start_agent, if it still runs.
bench_stop_agent() {
  if [[ -n "${agent_pid}" ]] && kill -0 "${agent_pid}" 2>/dev/null; then
    kill -TERM "${agent_pid}" && wait "${agent_pid}" 2>/dev/null || true
  fi
  agent_pid=""
}

bench_cleanup() {
  bench_stop_agent
  rm -rf -- "${work}"
}

# Starts the agent on ${work}/agent.yaml and waits (at most 10 s) until it logs its port.
bench_start_agent() {
  chmod 600 "${work}/policy.yaml" "${work}/agent.yaml"
  "${opsagent}" --config "${work}/agent.yaml" 2>"${work}/agent.log" &
  agent_pid=$!
  for _ in $(seq 1 100); do
    grep -q "${port}" "${work}/agent.log" 2>/dev/null && break
    sleep 0.1
  done
}
