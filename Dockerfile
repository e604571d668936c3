# kubeferry: the CLI, the reconciler for in-cluster cron, and the in-cluster volume mover.
# Stage 1 builds a wheel; stage 2 installs it into a slim image that runs as a non-root user.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir build
COPY pyproject.toml README.md ./
COPY reconciler/ reconciler/
COPY state/ state/
COPY tui/ tui/
RUN python -m build --wheel --outdir /wheels

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels/ /tmp/wheels/
RUN python -m pip install --no-cache-dir /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin kubeferry
USER 10001:10001
WORKDIR /home/kubeferry
ENTRYPOINT ["kubeferry"]
CMD ["--help"]
