# The production image of the badges worker (docker-compose.yml, the Tutor plugin in deploy/tutor).
#
# Two stages: the build stage installs the worker into a virtualenv, the runtime stage copies only
# that virtualenv onto the same slim base, so no build tool, pip cache or source tree ships.
# Runtime dependencies only: no test or bench tools and no embedded broker (the `embedded` extra
# is for `badges dev` and the tests; production talks to Apache Kafka).
# The base is pinned to a patch release; pin its digest too (PYTHON_IMAGE=python:...@sha256:...)
# where your registry policy asks for it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/badges
WORKDIR /src
COPY pyproject.toml README.md ./
COPY badges ./badges
COPY config ./config
COPY schemas ./schemas
COPY workers ./workers
COPY agents ./agents
COPY tables ./tables
RUN /opt/badges/bin/pip install .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/badges/bin:$PATH \
    BADGES_DATA_DIR=/var/lib/badges \
    BADGES_WEB_HOST=0.0.0.0 \
    BADGES_WEB_PORT=6066
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/badges --create-home badges
COPY --from=build /opt/badges /opt/badges
# numeric, so that Kubernetes can verify runAsNonRoot without reading /etc/passwd
USER 10001:10001
WORKDIR /var/lib/badges
VOLUME /var/lib/badges
EXPOSE 6066
# /healthz: 200 once the worker is ready to process (configuration loaded, partitions assigned,
# tables recovered), 503 with the reasons before
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BADGES_WEB_PORT', '6066') + '/healthz', timeout=2)"]
ENTRYPOINT ["badges"]
CMD ["worker"]
