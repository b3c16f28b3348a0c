#!/usr/bin/env bash
# Build the image, run it as README shows (config, certificates and the audit volume mounted),
# and talk to it with `openssl s_client` on loopback: greeting, ping, `run uptime` (procps) and
# `run disk-usage /` (the guard under an agent that is PID 1), then the HEALTHCHECK state.
#
# Usage: scripts/docker-test.sh     (root; not run by CI: it builds the whole project)
# Needs a Docker engine. When `docker info` fails and dockerd is installed, it starts one the way
# this sandbox allows (dockerd --bridge=none --iptables=false) and stops it at the end; builds and
# runs use --network host. When debian:12 cannot be pulled, it makes the base with
# scripts/docker-base.sh (debootstrap + docker import). Missing tools are named; exit 1.
set -euo pipefail

repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"
image="${OPSAGENT_IMAGE:-opsagent:test}"
name="opsagent-docker-test"

command -v docker >/dev/null 2>&1 || { echo "docker-test.sh: the docker CLI is missing (apt-get install docker.io)" >&2; exit 1; }
command -v openssl >/dev/null 2>&1 || { echo "docker-test.sh: openssl is missing" >&2; exit 1; }

work="$(mktemp -d /tmp/opsagent-docker-XXXXXX)"
dockerd_pid=""
cleanup() {
  docker rm -f "${name}" >/dev/null 2>&1 || true
  if [[ -n "${dockerd_pid}" ]]; then kill -TERM "${dockerd_pid}" 2>/dev/null || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

if ! timeout 10 docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker-test.sh: no Docker engine answers (docker info fails) and dockerd is not installed" \
         "(apt-get install docker.io); cannot test the image" >&2
    exit 1
  fi
  echo "docker-test.sh: starting dockerd --bridge=none --iptables=false (log: ${work}/dockerd.log)"
  dockerd --bridge=none --iptables=false >"${work}/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do timeout 5 docker info >/dev/null 2>&1 && break; sleep 1; done
  timeout 10 docker info >/dev/null 2>&1 || { tail -n 20 "${work}/dockerd.log" >&2; exit 1; }
fi

build_args=()
if ! docker image inspect debian:12 >/dev/null 2>&1 && ! timeout 120 docker pull -q debian:12 >/dev/null 2>&1; then
  echo "docker-test.sh: no registry: making the base with scripts/docker-base.sh"
  docker image inspect opsagent/debian:12 >/dev/null 2>&1 || scripts/docker-base.sh opsagent/debian:12
  build_args=(--build-arg BUILD_BASE=opsagent/debian:12 --build-arg RUNTIME_BASE=opsagent/debian:12)
fi
# Without the buildx plugin, the classic builder (it handles this Dockerfile, ARG before FROM
# included).
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi
docker build --network host "${build_args[@]}" -t "${image}" .

# The README's layout, with a port of our own (this host may run agents on 9999) and a key the
# container's uid 10001 owns.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "${work}/config" "${work}/certs"
scripts/gen-dev-certs.sh "${work}/certs" >/dev/null
chown 10001:10001 "${work}/certs/server.key"
sed "s/:9999\"/:${port}\"/g" config/agent.yaml >"${work}/config/agent.yaml"
cp config/policy.yaml "${work}/config/policy.yaml"
chmod 0755 "${work}" "${work}/config" "${work}/certs"
docker volume rm -f opsagent-docker-test-audit >/dev/null 2>&1 || true
docker run -d --name "${name}" --network host -e OPSAGENT_HEALTH_PORT="${port}" \
  -v "${work}/config:/srv/opsagent/config:ro" \
  -v "${work}/certs:/srv/opsagent/certs/dev:ro" \
  -v opsagent-docker-test-audit:/srv/opsagent/var "${image}" >/dev/null
for _ in $(seq 1 50); do docker logs "${name}" 2>&1 | grep -q "listening on" && break; sleep 0.2; done
docker logs "${name}" 2>&1 | tail -n 5

reply="$(printf 'ping\nrun uptime\nrun disk-usage /\nexit\n' | timeout 20 openssl s_client -quiet \
  -connect "127.0.0.1:${port}" -verify_return_error -cert "${work}/certs/alice.crt" \
  -key "${work}/certs/alice.key" -CAfile "${work}/certs/ca.crt" 2>/dev/null || true)"
echo "${reply}"
fail() { echo "docker-test.sh: FAIL: $*" >&2; docker logs "${name}" 2>&1 | tail -n 20 >&2; exit 1; }
grep -q '^OK opsagent .* ready' <<<"${reply}" || fail "no greeting"
grep -q '^OK pong' <<<"${reply}" || fail "no pong"
grep -q 'load average' <<<"${reply}" || fail "run uptime did not run (procps?)"
grep -q '^| Filesystem' <<<"${reply}" || fail "run disk-usage did not run (guard under PID 1?)"
grep -q 'cannot start' <<<"${reply}" && fail "a command could not start"
[[ "$(docker exec "${name}" cat /proc/1/comm)" == opsagent ]] || fail "the agent is not PID 1"

for _ in $(seq 1 30); do
  health="$(docker inspect -f '{{.State.Health.Status}}' "${name}")"
  [[ "${health}" == healthy ]] && break
  sleep 2
done
[[ "${health}" == healthy ]] || fail "HEALTHCHECK says ${health}"
docker stop -t 10 "${name}" >/dev/null
[[ "$(docker inspect -f '{{.State.ExitCode}}' "${name}")" == 0 ]] || fail "docker stop: not a clean exit"
echo "docker-test.sh: OK: image ${image} serves over mutual TLS as PID 1, commands run, healthy," \
     "stops cleanly"
