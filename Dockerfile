# bbr-orchestrator: a small image that runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bbr_orchestrator ./bbr_orchestrator
COPY migrations ./migrations
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /dist

FROM python:3.11-slim
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir "$(ls /tmp/*.whl)[postgres,mysql]" && rm /tmp/*.whl \
    && useradd --system --uid 10001 --home-dir /var/lib/bbr-orchestrator --create-home bbr \
    && install -d -o bbr -g bbr -m 0700 /var/lib/bbr-orchestrator
USER 10001:10001
ENV BBR_ORCHESTRATOR_CONFIG=/etc/bbr-orchestrator/config.yml
VOLUME ["/var/lib/bbr-orchestrator"]
# Metrics listen on loopback unless metrics.listen_address says otherwise.
EXPOSE 9613
ENTRYPOINT ["bbr-orchestrator"]
CMD ["--help"]
