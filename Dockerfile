# syntax=docker/dockerfile:1

# The image is built in two stages from the same base: the builder turns the project and every
# dependency into wheels and installs them into /opt/venv; the runtime stage copies only that venv,
# so no compiler, build tool, wheel or pip cache reaches the image. Both stages must use the same
# base image, because the venv's interpreter is a symlink to the base image's python.
#
# There is no Docker engine in development; deploy/check-dockerfile-install.sh replays the pip
# steps below, verbatim, in a clean venv (tests/test_deploy.py keeps the two in step).

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    WHEELS=/tmp/wheels
ENV PATH=/opt/venv/bin:$PATH

RUN python -m venv "$VIRTUAL_ENV"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway

RUN pip wheel --no-cache-dir --wheel-dir "$WHEELS" .
RUN pip install --no-cache-dir --no-index --find-links "$WHEELS" dlr-gateway


FROM python:3.11-slim

LABEL org.opencontainers.image.title="dlr-gateway" \
      org.opencontainers.image.description="A Dynamic Location Routing gateway for 911 over the Bandwidth Emergency Calling API" \
      org.opencontainers.image.source="https://github.com/dlr-gateway/dlr-gateway" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid, so Kubernetes can check runAsNonRoot (runAsUser: 10001) without a passwd lookup.
RUN groupadd --system --gid 10001 dlr \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin dlr \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/dlr-gateway

COPY --from=builder /opt/venv /opt/venv

# Configuration comes from the environment only (see the README); nothing is baked in, and the
# working directory holds no .env file.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_DATA_DIR=/var/lib/dlr-gateway
WORKDIR /app

USER 10001:10001
EXPOSE 8080

# Kubernetes uses its own probes (deploy/base/deployment.yaml); this serves `docker run`.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# SIGTERM starts a graceful drain (readiness 503 at once, in-flight requests finish within
# GATEWAY_SHUTDOWN_GRACE seconds).
STOPSIGNAL SIGTERM
CMD ["dlr-gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
