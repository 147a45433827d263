# syntax=docker/dockerfile:1
# bbr-orchestrator: the daemon in a small image, as an unprivileged user with a fixed UID.
#
#   docker build -t bbr-orchestrator .
#   docker run -d --name bbr-orchestrator \
#     -v bbr-state:/var/lib/bbr-orchestrator \
#     -v /srv/bbr/config.yml:/etc/bbr-orchestrator/config.yml:ro \
#     -v /srv/bbr/known_hosts:/etc/bbr-orchestrator/known_hosts:ro \
#     -v /srv/bbr/secrets:/run/secrets:ro \
#     -p 127.0.0.1:9613:9613 bbr-orchestrator
#
# Nothing secret is ever in a layer: the build context holds only the package sources (see
# .dockerignore), and credentials are mounted at run time under /run/secrets, where the config
# finds them as {credential: NAME} (CREDENTIALS_DIRECTORY below).
# Pin the base image by digest (python:3.11-slim-bookworm@sha256:...) for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a wheel from the sources, installed with its dependencies into a venv -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bbr_orchestrator ./bbr_orchestrator
COPY migrations ./migrations
# The venv has no pip of its own (nothing installs at run time); the base image's pip fills it.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv --without-pip /opt/bbr-orchestrator \
    && python -m pip --python /opt/bbr-orchestrator/bin/python install \
        "$(ls /dist/bbr_orchestrator-*.whl)[postgres,mysql]"

# --- runtime: the slim base image plus the venv, nothing else ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# A fixed UID/GID so a bind-mounted state directory can be chowned in advance (10001:10001).
RUN groupadd --system --gid 10001 bbr-orchestrator \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /var/lib/bbr-orchestrator --no-create-home --shell /usr/sbin/nologin \
        bbr-orchestrator \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/bbr-orchestrator \
    && install -d -m 0755 /etc/bbr-orchestrator
COPY --from=build /opt/bbr-orchestrator /opt/bbr-orchestrator
ENV PATH=/opt/bbr-orchestrator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CREDENTIALS_DIRECTORY=/run/secrets
# State (the default SQLite catalog): keep it on a volume so runs survive the container.
VOLUME ["/var/lib/bbr-orchestrator"]
WORKDIR /var/lib/bbr-orchestrator
USER 10001:10001
# Prometheus /metrics. The daemon listens on 127.0.0.1 by default, which nothing outside the
# container can reach: set metrics.listen_address: 0.0.0.0 in the config, and publish the port
# only where Prometheus needs it (-p 127.0.0.1:9613:9613 or a private network).
EXPOSE 9613
# The daemon is PID 1 and handles SIGTERM itself: no new runs, running bbr commands get
# daemon.shutdown_grace to finish, then are cancelled with cleanup. Give it that long:
# `docker stop --time 2100` (35 min) or stop_grace_period: 35m in compose; the default 10 s
# would SIGKILL it mid-backup. It starts no local child processes, so no init (tini) is needed.
STOPSIGNAL SIGTERM
# Healthy while /metrics answers (no curl in the image: the venv's Python does the request).
# Change the port here if metrics.port is not 9613; with metrics off, run with --no-healthcheck.
HEALTHCHECK --interval=1m --timeout=10s --start-period=5m --retries=3 \
    CMD ["/opt/bbr-orchestrator/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9613/metrics', timeout=5).close()"]
ENTRYPOINT ["bbr-orchestrator"]
CMD ["daemon"]
