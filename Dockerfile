# One image for `ddc` (ingress, egress, diode-sim, topology, supervise) and `ddc-dedup`.
# Runs as a non-root user and works with a read-only root filesystem (compose `read_only: true`
# with a tmpfs on /tmp; Kubernetes `readOnlyRootFilesystem: true` with an emptyDir on /tmp):
# nothing is written outside /tmp and the data directory /var/lib/ddc (mount a volume there).
#   docker build -t ddc .
#   docker run --rm ddc ddc --help

FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY ddc ./ddc
COPY dedup_service ./dedup_service
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 ddc \
    && useradd --system --uid 10001 --gid ddc --home-dir /var/lib/ddc --shell /usr/sbin/nologin ddc \
    && install -d -o ddc -g ddc -m 0750 /var/lib/ddc
USER 10001:10001
WORKDIR /var/lib/ddc
VOLUME ["/var/lib/ddc"]

# Each daemon serves /healthz on its `http_listen`; set DDC_HEALTHCHECK_URL to match it.
# Python's urllib, so the image needs no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('DDC_HEALTHCHECK_URL', 'http://127.0.0.1:9100/healthz'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["ddc", "--help"]
