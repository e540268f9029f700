# syntax=docker/dockerfile:1
# Production image of the learning stats service.
# Build: docker build --build-arg GIT_REVISION="$(git rev-parse HEAD)" -t learning-stats .

# Builder and runtime share one base so the virtualenv's interpreter path stays valid after the copy.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
# Only the runtime requirements: moto and the test tools live in requirements-local/-dev.txt.
COPY requirements.txt /tmp/requirements.txt
# Wheels only: every runtime dependency ships manylinux wheels, so the image needs no compiler
# and a dependency that suddenly needs one fails the build instead of pulling in a toolchain.
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE} AS runtime
# Numeric ids so the runtime (and the ECS task definition's User) can prove non-root without /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY service/ ./service/
COPY config/ ./config/

# Declared last so a new revision does not invalidate the dependency layers above.
# With several gunicorn workers they share their metrics through files there (/tmp is the
# task's one writable mount; gunicorn_conf.py empties the directory at start).
ARG GIT_REVISION=unknown
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STATS_ENV=production \
    STATS_HOST=0.0.0.0 \
    STATS_PORT=8080 \
    STATS_SHUTDOWN_GRACE_SECONDS=25 \
    STATS_GIT_REVISION=$GIT_REVISION \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-metrics

USER 10001:10001
EXPOSE 8080
# Gunicorn drains in-flight requests on SIGTERM for STATS_SHUTDOWN_GRACE_SECONDS; ECS waits
# stopTimeout (30 s) before SIGKILL, so the drain always fits.
STOPSIGNAL SIGTERM
# slim has no curl: the stdlib client is enough, and urlopen raises (exit 1) on any non-2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=3)"]
CMD ["gunicorn", "--config", "python:service.gunicorn_conf", "service.main:app_factory"]
