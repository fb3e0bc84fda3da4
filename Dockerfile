# Container image of veeam-em-exporter (see docs/deployment.md).
#
#   docker build -t veeam-em-exporter .
#   DOCKER_BUILDKIT=0 docker build -t veeam-em-exporter .       # the classic builder
#   docker build --build-arg PYTHON_IMAGE=registry.local/python:3.11-slim-bookworm \
#                --build-arg PIP_INDEX_URL=https://pypi.registry.local/simple -t veeam-em-exporter .
#   docker run --rm -p 9745:9745 veeam-em-exporter --demo
#
# Builds with the classic builder and with BuildKit alike: no syntax line (no frontend image
# to pull), no RUN --mount, no COPY --chmod, no heredocs (tests/test_deployment.py checks it).
# Two stages on the same base image: the builder turns the project and its dependencies into
# wheels and installs them into a virtualenv at /opt/venv; the runtime stage copies that
# virtualenv and nothing else (no wheels, no compiler, no build tools) and runs as a fixed
# non-root user. tests/test_deployment.py checks this file, and installs the project with the
# same pip commands.

# The base image of both stages, pinned by tag; name a mirror here on an air-gapped network.
# Both stages must use the same image: the virtualenv's python links to the base image's.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# The package index pip reads the dependencies (and the build backend) from; a mirror here.
ARG PIP_INDEX_URL=https://pypi.org/simple

WORKDIR /src
# What the wheel is built from: the package, its metadata, and the deployment files it carries
# (`veeam-em-exporter assets DIR` writes them out of the image too).
COPY pyproject.toml setup.py README.md LICENSE config.example.yml ./
COPY exporter ./exporter
COPY prometheus ./prometheus
COPY grafana ./grafana
COPY packaging ./packaging
RUN pip wheel --no-cache-dir --wheel-dir /wheels .
# Installed here, in the builder, so that the runtime stage gets the virtualenv in one COPY
# and the wheels never become a layer of the image. (Copying them into the runtime stage and
# deleting them in a later step would leave them in the copy's layer; BuildKit's bind mount,
# which avoids that, does not exist in the classic builder.)
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels veeam-em-exporter

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=unknown
LABEL org.opencontainers.image.title="veeam-em-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Veeam Backup Enterprise Manager system sessions" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/veeam-em-exporter/veeam-em-exporter" \
      org.opencontainers.image.documentation="https://github.com/veeam-em-exporter/veeam-em-exporter/blob/main/docs/deployment.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /opt/venv /opt/venv
COPY deploy/docker/entrypoint.sh /usr/local/bin/veeam-em-exporter-entrypoint

# A fixed UID/GID, so file permissions on mounted configs and secrets can be planned for.
# The entrypoint's mode is set here rather than trusted from the checkout (a checkout made
# with umask 077 would leave it unreadable to that user).
RUN groupadd --system --gid 10001 exporter \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/veeam-em-exporter \
    && chmod 0755 /usr/local/bin/veeam-em-exporter-entrypoint

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
