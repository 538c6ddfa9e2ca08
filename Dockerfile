# The badges worker image used by docker-compose.yml (production topology).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BADGES_DATA_DIR=/var/lib/badges \
    BADGES_WEB_HOST=0.0.0.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY badges ./badges
COPY config ./config
COPY schemas ./schemas
COPY workers ./workers
COPY agents ./agents
COPY tables ./tables
RUN pip install . && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/badges --create-home badges

USER badges
WORKDIR /var/lib/badges
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=6 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BADGES_WEB_PORT', '6066') + '/healthz', timeout=2)"
ENTRYPOINT ["badges"]
CMD ["worker"]
