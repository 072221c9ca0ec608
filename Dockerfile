# dicomgate: slim, non-root image. Build: docker build -t dicomgate .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DICOMGATE_DATA_DIR=/data
# psycopg 3 (Procrastinate's driver, for the task queue on PostgreSQL) comes as psycopg[binary]:
# it carries its own client library, so the image needs no system package for it.
RUN groupadd --system dicomgate && useradd --system --gid dicomgate --home /app dicomgate \
    && mkdir -p /app /data && chown dicomgate:dicomgate /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
USER dicomgate
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/ris/health/', timeout=4).status == 200 else 1)"
# Migrations first (idempotent), then the service.
CMD ["sh", "-c", "dicomgate db upgrade && exec dicomgate serve --host 0.0.0.0 --port 8000"]
