# The bastion example app as a container image.
#
# Two stages: the builder resolves the locked dependencies with uv into a
# virtualenv; the runtime stage copies only that virtualenv onto a clean
# Python, so no uv, no build cache and no source tree ship. Every base image
# is pinned by version and by digest (a tag can move; a digest cannot); bump
# tag and digest together.
#
# Where the digests come from: no registry could be reached where this file
# was written, so none was pulled. Each is the multi-platform index digest
# that several independent public projects pin for the same tag (they agree).
# Confirm before a release: docker buildx imagetools inspect <image>:<tag>
#
#   docker build -t bastion:0.1.0 .
#   docker run --rm -p 127.0.0.1:8000:8000 -e SECRET_KEY=... -e DATABASE_URL=... bastion:0.1.0
#
# Migrations are a separate one-shot run of the same image (`bastion migrate`),
# as compose.yaml does, so that N instances never race to migrate.

FROM ghcr.io/astral-sh/uv:0.13.0@sha256:cdc6093146eb3ff6a40107b38f008b789e050e77ad87865e381d9917da55a168 AS uv

FROM python:3.11.15-slim-trixie@sha256:db3ff2e1800a8581e2c48a27c3995339d47bdf046da21c7627accd3d51053a93 AS builder
COPY --from=uv /uv /usr/local/bin/uv
# Compiled bytecode in the image (no writes at start-up, read-only root FS
# works); copied files, not hard links into a cache that will not ship; the
# image's own Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/bastion
WORKDIR /src
# The app this image serves is the example, its own distribution in the uv
# workspace (example/pyproject.toml) beside the library: `--package
# bastion-example` installs it, the library it depends on, and their locked
# runtime dependencies, and nothing of the dev group.
# Dependencies first: this layer is reused until uv.lock changes (uv reads the
# member's pyproject.toml to know the workspace).
COPY pyproject.toml uv.lock README.md ./
COPY example/pyproject.toml ./example/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package bastion-example
# Then the two distributions themselves, as regular (non-editable) installs, so
# the runtime stage needs the virtualenv and nothing from /src.
COPY src ./src
COPY example ./example
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package bastion-example

FROM python:3.11.15-slim-trixie@sha256:db3ff2e1800a8581e2c48a27c3995339d47bdf046da21c7627accd3d51053a93 AS runtime
# A fixed numeric UID/GID, so orchestrators can verify runAsNonRoot and
# volume permissions can be set ahead of time.
RUN groupadd --system --gid 10001 bastion \
    && useradd --system --uid 10001 --gid bastion --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin bastion
# Owned by root and not writable by the app user: the code cannot be changed
# by the process that runs it.
COPY --from=builder /opt/bastion /opt/bastion
ENV PATH=/opt/bastion/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production
# Nothing is written here in production (PostgreSQL); a bare `docker run`
# falls back to SQLite in a writable, throwaway place rather than failing.
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
# Liveness only (no database or cache touched), with the standard library:
# the image needs no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health/live', timeout=2).status != 200)"]
# --no-proxy-headers: bastion resolves X-Forwarded-* itself, from
# TRUSTED_PROXIES only. --no-server-header: nothing to advertise.
# --no-access-log: bastion writes its own access log, with the client IP it
# resolved (uvicorn's would show the proxy's).
CMD ["uvicorn", "--factory", "bastion_example:create_app", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--no-proxy-headers", "--no-server-header", "--no-access-log", \
     "--timeout-graceful-shutdown", "15"]
