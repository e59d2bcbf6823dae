# thulium-etl as a container: `docker run --env-file … IMAGE sync` (see README, Kubernetes).
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home etl
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY etl ./etl
COPY migrations ./migrations
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /
USER etl
ENV THULIUM_LOG_FORMAT=json PYTHONUNBUFFERED=1
ENTRYPOINT ["thulium-etl"]
CMD ["--help"]
