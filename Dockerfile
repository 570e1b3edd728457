# netmon's container image: `make image` (scripts/image-build.sh), or
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t netmon:0.1.0 .
# Runs the DevZero pipeline by default (`netmon run --zxporter`, configs/devzero.yaml), so it stands in for
# zxporter-netmon's image under that chart, whose only argument (-collector-mode=…) netmon takes as well;
# other arguments run other pipelines (e.g. run -c /opt/netmon/configs/kubernetes.yaml).
#
# Every RUN calls a script that is tested without a container engine (test/image.test.ts): the build is
# scripts/bootstrap.sh's (as on any Debian machine), the runtime tree is scripts/image-stage.mjs's, the
# runtime stage's set-up is scripts/image-runtime.sh's.

# The base of both stages: Node 24 on Debian 12, so the addon is built against the very libraries it runs
# with; the Node of .node-version, which the checkout builds and is tested with (test/image.test.ts keeps
# them the same). Pin it by digest for reproducible builds
# (--build-arg NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:…); another Node must satisfy package.json's
# engines (the build checks).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
# Only the build's apt packages (compilers, clang for the BPF programs, libbpf-dev, libmnl-dev), then npm ci
# and npm run build (the addon and BPF objects, tsc -b, the bundle), with the base image's Node.
RUN --mount=type=cache,target=/root/.npm bash scripts/bootstrap.sh --build-deps-only
RUN node scripts/image-stage.mjs /out

FROM ${NODE_IMAGE}
ARG NODE_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="netmon" \
      org.opencontainers.image.description="Per-node network-flow agent for Kubernetes: bytes, destinations and their cost, per workload" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
# The shared libraries the addon links beyond what Node itself needs (libc6, libstdc++6, libgcc-s1 are in
# every image Node runs in), the netmon user (65532) and the state directory.
RUN --mount=type=bind,source=scripts/image-runtime.sh,target=/tmp/image-runtime.sh \
    bash /tmp/image-runtime.sh libbpf1 libelf1 libmnl0 zlib1g
COPY --from=build /out/opt/netmon /opt/netmon
ENV NODE_ENV=production
WORKDIR /opt/netmon
# The delta processor's counters and the devzero exporter's unsent intervals, kept across restarts
# (NETMON_STATE_DIR); in Kubernetes a hostPath volume takes its place.
VOLUME /var/lib/netmon
# 8081: /healthz, /readyz, /status (and zxporter-netmon's JSON /metrics); 9464: Prometheus /metrics.
EXPOSE 8081 9464
# Kubernetes probes /healthz and /readyz itself; a HEALTHCHECK would only duplicate them.
HEALTHCHECK NONE
# Root, with the capabilities the pod grants: every kernel collection mode needs some (CAP_NET_ADMIN,
# CAP_BPF; charts/netmon/files/privileges.yaml has each mode's, as measured), and Kubernetes gives added
# capabilities to a non-root user only through file capabilities, which allowPrivilegeEscalation: false
# (no_new_privs) disables. A pod drops all but its
# mode's. Pipelines without kernel access run as the netmon user (uid 65532): --user netmon, runAsUser.
USER root
ENTRYPOINT ["/opt/netmon/bin/netmon"]
CMD ["run", "--zxporter"]
