# syntax=docker/dockerfile:1
#
# Container image of veeam-em-exporter (see docs/deployment.md).
#
#   docker build -t veeam-em-exporter .
#   docker run --rm -p 9745:9745 veeam-em-exporter --demo
#
# Two stages: the builder turns the project and its dependencies into wheels; the runtime
# stage installs only those wheels (no index, no compiler) into a virtualenv and runs as a
# fixed non-root user. Both stages use the same base image, pinned by tag; tests/test_deployment.py
# checks this file, and installs the project with the same pip commands.

# ---------------------------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm AS builder

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm

ARG VERSION=unknown
LABEL org.opencontainers.image.title="veeam-em-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Veeam Backup Enterprise Manager system sessions" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/veeam-em-exporter/veeam-em-exporter" \
      org.opencontainers.image.documentation="https://github.com/veeam-em-exporter/veeam-em-exporter/blob/main/docs/deployment.md" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The wheels are bind-mounted from the builder for this one step, so they never become a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels veeam-em-exporter

# A fixed UID/GID, so file permissions on mounted configs and secrets can be planned for.
RUN groupadd --system --gid 10001 exporter \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/veeam-em-exporter

COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/veeam-em-exporter-entrypoint

USER 10001:10001
EXPOSE 9745

# Only what the image has: the venv's Python and urllib (slim images have no curl or wget).
# Override it (or use --no-healthcheck) when the exporter listens elsewhere or requires TLS or
# basic auth through --web.config.file.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9745/-/healthy', timeout=4)"]

# The exporter handles SIGTERM itself (it logs out of every EM, then exits 0) and the
# entrypoint execs it, so it runs as PID 1 and no init process (`docker run --init`) is needed.
STOPSIGNAL SIGTERM

# Uses /etc/veeam-em-exporter/config.yml if it exists and no --config.file is given, else the
# VEEAM_EM_* environment variables; arguments are the exporter's flags.
ENTRYPOINT ["veeam-em-exporter-entrypoint"]
CMD []
