# Production image: build a wheel in one stage, run it slim and unprivileged in the next.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY backup ./backup
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 vaxvault \
    && install -d -o vaxvault -g vaxvault -m 0750 /spool
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER vaxvault
WORKDIR /home/vaxvault
# The spool (stage 1) outlives a container only on a volume: /spool is created owned by the
# image's user, so a named volume mounted there (docker-compose.yml) starts with that owner.
ENV VAXVAULT_ENV=production \
    VAXVAULT_BACKUP_SPOOL_DIR=/spool
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
CMD ["vaxvault", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
