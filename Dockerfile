# opsagent container image: build on Debian 12 (bookworm), run on Debian 12 slim as non-root.
#
#   docker build --network host -t opsagent .
#   scripts/gen-dev-certs.sh certs/container                   # a key for the container's user:
#   sudo chown 10001:10001 certs/container/server.key          # uid 10001 must own it (0600)
#   docker run --rm --network host --name opsagent \
#     -v "$PWD/config:/srv/opsagent/config:ro" \
#     -v "$PWD/certs/container:/srv/opsagent/certs/dev:ro" \
#     -v opsagent-audit:/srv/opsagent/var opsagent
#
# Layout: the repository's own, under /srv/opsagent, so that config/agent.yaml's relative paths
# (../certs/dev/server.crt, ../var/audit.jsonl, policy.yaml) mean the same inside: config/ and
# certs/dev/ are separate read-only mounts (never one inside the other), var/ a writable volume
# for the audit log. Another config: mount it at /srv/opsagent/config/agent.yaml or pass
# `--config FILE` after the image name.
#
# The agent runs as uid 10001 (no root, nothing to drop; run_as does not apply). It refuses
# every file it trusts (agent.yaml, the policy, certificates, CA, CRL, key) and the directory
# holding it when group or others may write it or a user other than root or uid 10001 owns it;
# the key must also be readable by uid 10001 only, hence the chown above (do not chown the
# certs/dev/ that scripts/run-dev.sh uses as root: a key owned by another user is refused there).
# The example config listens on 127.0.0.1/::1 (reachable with --network host); to publish a port
# with -p, listen on "0.0.0.0:9999" instead.
#
# The agent is PID 1 of the container: it handles SIGTERM (docker stop), reaps every child (it is
# a subreaper) and its commands' guard accepts it as PID 1 (when PID 1 ends, the kernel kills
# everything in the container, which is the guarantee the guard gives elsewhere).
#
# No registry? scripts/docker-base.sh makes the Debian 12 base with debootstrap + docker import;
# then build with --build-arg BUILD_BASE=opsagent/debian:12 --build-arg RUNTIME_BASE=opsagent/debian:12.
# No bridge networking (this development machine): start the engine with
# `dockerd --bridge=none --iptables=false` and pass `--network host` to build and run.
# scripts/docker-test.sh does all of it and talks to the container with openssl s_client.

ARG BUILD_BASE=debian:12
ARG RUNTIME_BASE=debian:12-slim

# ---- build stage ---------------------------------------------------------------------------
FROM ${BUILD_BASE} AS build

WORKDIR /src
# Dependencies first, so this layer is cached until install-deps.sh itself changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*

COPY . .
# Tests are not needed in the image; CI runs them (scripts/test.sh).
RUN rm -rf build \
 && OPSAGENT_SKIP_DEPS=1 scripts/build.sh release -DOPSAGENT_BUILD_TESTS=OFF \
 && install -D -m 0755 build/release/agent/app/opsagent /out/opsagent \
 && install -D -m 0755 build/release/agent/app/opsagent-guard /out/opsagent-guard \
 && install -D -m 0755 build/release/agent/app/opsctl /out/opsctl \
 && strip --strip-unneeded /out/opsagent /out/opsagent-guard /out/opsctl

# ---- runtime stage -------------------------------------------------------------------------
FROM ${RUNTIME_BASE} AS runtime

# Runtime libraries only (Boost is used header-only); procps for the example policy's `uptime`
# (and ps for whoever debugs the container). If a component starts linking a compiled
# library, add its runtime package here; the ldd check below fails the build until you do.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 libyaml-cpp0.7 libspdlog1.10 libfmt9 libre2-9 libedit2 libsystemd0 \
      ca-certificates procps \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 opsagent \
 && useradd --system --uid 10001 --gid opsagent --home-dir /var/lib/opsagent --no-create-home \
      --shell /usr/sbin/nologin opsagent \
 && install -d -m 0755 /srv/opsagent /srv/opsagent/config /srv/opsagent/certs \
      /srv/opsagent/certs/dev \
 && install -d -m 0750 -o opsagent -g opsagent /var/lib/opsagent /srv/opsagent/var

COPY --from=build /out/opsagent /usr/local/sbin/opsagent
# The parent of every command the agent runs; found beside opsagent.
COPY --from=build /out/opsagent-guard /usr/local/sbin/opsagent-guard
COPY --from=build /out/opsctl /usr/local/bin/opsctl
RUN ! ldd /usr/local/sbin/opsagent /usr/local/sbin/opsagent-guard /usr/local/bin/opsctl | grep -F "not found"

# The audit log survives the container.
VOLUME ["/srv/opsagent/var"]
USER opsagent
WORKDIR /var/lib/opsagent
EXPOSE 9999
# Alive = accepting TCP on the agent's port (set OPSAGENT_HEALTH_PORT if the config moves it).
# No client certificate is needed; each probe is one unauthenticated connection, which the agent
# counts with the other pre-authentication failures in its audit log (aggregated, not per probe).
ENV OPSAGENT_HEALTH_PORT=9999
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${OPSAGENT_HEALTH_PORT}"]
ENTRYPOINT ["/usr/local/sbin/opsagent"]
CMD ["--config", "/srv/opsagent/config/agent.yaml"]
