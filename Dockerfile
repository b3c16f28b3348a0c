# opsagent container image: build on Debian 12 (bookworm), run on Debian 12 slim as non-root.
#
#   docker build --network host -t opsagent .
#   docker run --rm --network host \
#     -v "$PWD/config:/etc/opsagent:ro" -v "$PWD/certs/dev:/etc/opsagent/certs:ro" opsagent
#
# The agent reads /etc/opsagent/agent.yaml (mount your own; paths inside it must point to
# certificates, policy and the audit log as seen from inside the container) and listens on 9999.
# It refuses every file it trusts (agent.yaml, the policy, certificates, CA, CRL, key) and the
# directory holding it when group or others may write it or a user other than root or the
# agent's own owns it; the key must also be readable by the agent only. The container user has
# the fixed uid 10001, so on the host:
#   sudo chown -R 10001:10001 config certs/dev && chmod -R go-w config certs/dev
#   chmod 600 certs/dev/*.key
#
# Note for this development machine: there is no running Docker engine, and the sandbox has no
# bridge networking. Start the engine with `dockerd --bridge=none --iptables=false` and pass
# `--network host` to both `docker build` and `docker run`.

# ---- build stage ---------------------------------------------------------------------------
FROM debian:12 AS build

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
FROM debian:12-slim AS runtime

# Runtime libraries only (Boost is used header-only). If a component starts linking a compiled
# library, add its runtime package here; the ldd check below fails the build until you do.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libssl3 libyaml-cpp0.7 libspdlog1.10 libfmt9 libre2-9 libedit2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 opsagent \
 && useradd --system --uid 10001 --gid opsagent --home-dir /var/lib/opsagent --no-create-home \
      --shell /usr/sbin/nologin opsagent \
 && install -d -m 0755 /etc/opsagent \
 && install -d -m 0750 -o opsagent -g opsagent /var/lib/opsagent /var/log/opsagent

COPY --from=build /out/opsagent /usr/local/sbin/opsagent
# The parent of every command the agent runs; found beside opsagent.
COPY --from=build /out/opsagent-guard /usr/local/sbin/opsagent-guard
COPY --from=build /out/opsctl /usr/local/bin/opsctl
RUN ! ldd /usr/local/sbin/opsagent /usr/local/sbin/opsagent-guard /usr/local/bin/opsctl | grep -F "not found"

USER opsagent
WORKDIR /var/lib/opsagent
EXPOSE 9999
ENTRYPOINT ["/usr/local/sbin/opsagent", "--config", "/etc/opsagent/agent.yaml"]
