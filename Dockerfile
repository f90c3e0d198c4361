# One image for every Handoff process. It has no CMD and no ENTRYPOINT: docker-compose.yml
# gives each service its `command` (python -m services.router | services.handoff |
# services.timeout | services.common.topics).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what `pip install .` needs is copied, one path at a time: the repository has no
# .dockerignore, and `COPY . .` would pull in .venv, the caches and the test tree.
# devstack/ (the local JVM Kafka and redis-server used by the tests) is not needed at run time.
WORKDIR /build
COPY pyproject.toml ./
COPY schemas ./schemas
COPY services ./services
RUN pip install --no-cache-dir . \
    && rm -rf /build

RUN groupadd --system --gid 10001 handoff \
    && useradd --system --uid 10001 --gid handoff --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin handoff

# An empty working directory: `python -m services.x` imports the installed package (with its
# package data, services/handoff/state/lua/*.lua), never a source tree.
WORKDIR /app
USER 10001:10001

# Ops HTTP ports (/healthz, /readyz, /metrics): handoff 8080, router 8081, timeout 8082.
EXPOSE 8080 8081 8082
