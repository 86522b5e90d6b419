# MediaNest image: `medianest serve` by default; `medianest worker`, `medianest migrate` and the
# other commands run from the same image. No secret is ever part of it: keys, passwords and
# tokens come at run time from Docker secrets or the environment (see docker-compose.yml).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: a wheel of MediaNest, installed with its dependencies into a virtualenv that
# the final stage copies whole (installing from wheels there would leave them in a layer).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY medianest/ medianest/
COPY plugins/ plugins/
# The wheel carries the pages' templates and static files (package data): nothing is copied
# beside it.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/medianest \
 && /opt/medianest/bin/pip install /wheels/medianest-*.whl \
 && /opt/medianest/bin/python -m compileall -q /opt/medianest

FROM ${PYTHON_IMAGE}
# ffmpeg merges and converts YouTube downloads; pg_dump (postgresql-client) backs up PostgreSQL;
# outgoing TLS trusts the system's certificate authorities (ca-certificates).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates ffmpeg postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home medianest \
 && mkdir -p /data /library \
 && chown medianest:medianest /data /library
COPY --from=build /opt/medianest /opt/medianest
COPY deploy/docker-entrypoint.sh /usr/local/bin/medianest-entrypoint
ENV PATH=/opt/medianest/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MEDIANEST_DATA_DIR=/data \
    MEDIANEST_PORT=8080
USER medianest
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Liveness only: /readyz (database, Redis, migrations) is what the compose file checks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MEDIANEST_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["medianest-entrypoint"]
CMD ["medianest", "serve", "--host", "0.0.0.0"]
