# One image for gateway, worker, migrate and the `opengovfood` CLI; docker-compose.yml picks the command.
# Bookworm, not the newest Debian: its postgresql-client is 15, the server's major version, so
# `opengovfood db backup|restore` write and read dumps that PostgreSQL 15 takes.

FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# The dependency layer, before any source: rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml ./
COPY shared/ shared/
COPY gateway/ gateway/
COPY worker/ worker/
COPY cli/ cli/
COPY docs/asyncapi.yaml docs/
RUN pip install --no-deps .

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations/ migrations/
USER app
EXPOSE 8000 9464
# The gateway's readiness (the default command); compose gives the worker its own check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=5 CMD ["opengovfood", "health", "--timeout", "3"]
# No secrets here: SECRET_KEY, DATABASE_URL, RABBIT_URL … come from the environment at run time.
CMD ["uvicorn", "gateway.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
