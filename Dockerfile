# syntax=docker/dockerfile:1
# thulium-etl as a container image (README: "The image"):
#   docker build --build-arg VERSION=0.1.0 -t registry.example.com/thulium-etl:0.1.0 .
#   docker run --rm --env-file thulium-etl.env registry.example.com/thulium-etl:0.1.0 migrate
#   docker run --rm --env-file thulium-etl.env registry.example.com/thulium-etl:0.1.0   # sync
# tests/test_image.py does what this file does without a Docker engine: it builds the wheel,
# installs it into a fresh virtual environment and runs migrate and sync as user 10001.

# Stage 1: build the wheel. Only the package and its migrations are copied in (.dockerignore);
# the Thulium stand-in (standin) and the tests never reach the wheel (pyproject.toml).
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY etl ./etl
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# Stage 2: the runtime. The wheel and its dependencies (all pure Python or binary wheels), no
# compiler, no build tools, no source tree, no test equipment.
FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="thulium-etl" \
      org.opencontainers.image.description="Nightly copy of Thulium outbound campaign statuses into PostgreSQL" \
      org.opencontainers.image.version="${VERSION}"
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    pip install --no-cache-dir /dist/*.whl
# A numeric user (10001) that exists in /etc/passwd, so Kubernetes' runAsNonRoot can check it
# and tools that look the user up do not fail; no home directory, no login shell.
RUN groupadd --system --gid 10001 etl \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin etl
USER 10001:10001
WORKDIR /
# JSON logs for the log collector; no .pyc writes (the root filesystem is read-only in the
# Kubernetes manifests); every log line leaves the process at once.
ENV THULIUM_LOG_FORMAT=json \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["thulium-etl"]
CMD ["sync"]
