# The stream-monitor image, used by docker-compose.yml for the one-shot topic creation, the monitor and the
# synthetic producer. Configuration is not baked in: compose mounts config/ at /config.
#
#   docker build -t stream-monitor:local .
#   docker run --rm -v "$PWD/config:/config:ro" -p 127.0.0.1:9108:9108 stream-monitor:local \
#       stream-monitor run --config /config/stream-monitor.yaml

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream_monitor ./stream_monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin monitor
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY scripts/produce_synthetic.py ./scripts/produce_synthetic.py
USER monitor
# /metrics, /healthz, /readyz (service.metrics_port); bind_host must be 0.0.0.0 to be reachable from outside.
EXPOSE 9108
CMD ["stream-monitor", "--help"]
