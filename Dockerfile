# One image for `ddc` (ingress, egress, diode-sim, topology, supervise) and `ddc-dedup`.
# Runs as a non-root user and works with a read-only root filesystem (compose `read_only: true`
# with a tmpfs on /tmp; Kubernetes `readOnlyRootFilesystem: true` with an emptyDir on /tmp):
# nothing is written outside /tmp and the data directory /var/lib/ddc (mount a volume there
# when a sink writes files; the image declares no VOLUME, so no anonymous volume is left behind).
#   docker build -t ddc .
#   docker build --build-arg BASE_IMAGE=registry.example/python:3.11-slim -t ddc .
#   docker run --rm ddc ddc --help
# Dependencies are pinned by constraints.txt (the versions the test suite passed with); the
# librdkafka client (confluent-kafka, `client = "librdkafka"`) is installed too.
# No HEALTHCHECK here: each daemon serves /healthz on its own `http_listen` (none by default),
# so the stacks declare the check per service (compose/*.yml, k8s/*.yaml probes).

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md constraints.txt ./
COPY ddc ./ddc
COPY dedup_service ./dedup_service
RUN pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels ".[librdkafka]"

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Intel ISA-L (Debian's libisal2): the ingress computes FEC parity with it, ~9x less CPU than
# zfec (docs/wire-protocol.md, "Encoder"); without it the ingress falls back to zfec and says so
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libisal2 >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
COPY --from=build /src/constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir --no-index --find-links /wheels --constraint /tmp/constraints.txt "ddc[librdkafka]" \
    && rm -rf /wheels /tmp/constraints.txt \
    && groupadd --system --gid 10001 ddc \
    && useradd --system --uid 10001 --gid ddc --home-dir /var/lib/ddc --shell /usr/sbin/nologin ddc \
    && install -d -o ddc -g ddc -m 0750 /var/lib/ddc
USER 10001:10001
WORKDIR /var/lib/ddc

CMD ["ddc", "--help"]
