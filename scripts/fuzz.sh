#!/usr/bin/env bash
# Build the libFuzzer targets (preset "fuzz", clang) and run them one after another.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default 60)
#   TARGET   line_framer command_parser policy_loader authorizer path_resolver cert_identity
#            audit_encoder chain_verifier (default: all)
#   OPSAGENT_SKIP_DEPS=1  do not install clang and the libFuzzer runtime when missing
# Each target starts from the committed seeds in tests/fuzz/corpus/TARGET/ and grows a work
# corpus in build/fuzz/corpus/TARGET/ (kept between runs); crashes, leaks and timeouts go to
# build/fuzz/artifacts/, logs to build/fuzz/logs/. Prints one line per target and exits non-zero
# when any target found something. Reproduce a finding with:
#   build/fuzz/tests/fuzz/fuzz_TARGET build/fuzz/artifacts/TARGET-crash-...
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

all_targets=(line_framer command_parser policy_loader authorizer path_resolver cert_identity
  audit_encoder chain_verifier)

seconds="${1:-60}"
if [[ ! "${seconds}" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '${seconds}'" >&2
  exit 2
fi
shift || true
targets=("$@")
if [[ "${#targets[@]}" -eq 0 ]]; then targets=("${all_targets[@]}"); fi
for t in "${targets[@]}"; do
  if [[ ! " ${all_targets[*]} " =~ " ${t} " ]]; then
    echo "fuzz.sh: unknown target '${t}' (known: ${all_targets[*]})" >&2
    exit 2
  fi
done

# clang and the libFuzzer runtime (only a Recommends of clang, so installed explicitly).
if [[ "${OPSAGENT_SKIP_DEPS:-0}" != "1" ]]; then
  missing=()
  for pkg in clang libclang-rt-14-dev; do
    if [[ "$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)" != "install ok installed" ]]; then
      missing+=("${pkg}")
    fi
  done
  if [[ "${#missing[@]}" -gt 0 ]]; then
    sudo_cmd=()
    if [[ "$(id -u)" -ne 0 ]]; then sudo_cmd=(sudo --preserve-env=DEBIAN_FRONTEND); fi
    export DEBIAN_FRONTEND=noninteractive
    echo "fuzz.sh: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

cmake --preset fuzz >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_${t}"); done
cmake --build --preset fuzz -j2 --target "${build_targets[@]}"

out="build/fuzz"
mkdir -p "${out}/artifacts" "${out}/logs"
status=0
summary=()
for t in "${targets[@]}"; do
  corpus="${out}/corpus/${t}"
  log="${out}/logs/${t}.log"
  mkdir -p "${corpus}"
  args=(
    -max_total_time="${seconds}"
    -rss_limit_mb=2048
    -timeout=10
    -print_final_stats=1
    -artifact_prefix="${out}/artifacts/${t}-"
  )
  if [[ -f "tests/fuzz/${t}.dict" ]]; then args+=(-dict="tests/fuzz/${t}.dict"); fi
  echo "fuzz.sh: ${t} for ${seconds}s (log: ${log})"
  rc=0
  # The first directory is the writable work corpus; the committed seeds are read from the second.
  "${out}/tests/fuzz/fuzz_${t}" "${args[@]}" "${corpus}" "tests/fuzz/corpus/${t}" >"${log}" 2>&1 ||
    rc=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)"
  secs="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "${log}" | tail -n 1)"
  cov="$(grep -o 'cov: [0-9]*' "${log}" | tail -n 1 | cut -d' ' -f2)"
  files="$(find "${corpus}" -type f | wc -l)"
  if [[ "${rc}" -eq 0 ]]; then
    result="ok"
  else
    result="FOUND (exit ${rc}): $(grep -m1 -E '^==[0-9]+==ERROR|PROPERTY VIOLATED|deadly signal|Test unit written' "${log}" || echo 'see log')"
    status=1
  fi
  line="$(printf '%-15s runs=%-9s secs=%-4s cov=%-5s corpus=%-5s %s' "${t}" "${runs:-?}" \
    "${secs:-?}" "${cov:-?}" "${files}" "${result}")"
  echo "fuzz.sh: ${line}"
  summary+=("${line}")
done

echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
if [[ "${status}" -ne 0 ]]; then
  echo "fuzz.sh: FINDINGS; artifacts in ${out}/artifacts/, logs in ${out}/logs/" >&2
fi
exit "${status}"
