# CPU prediction server: `perfseer serve`, the same command the tests run.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PERFSEER_HOST=0.0.0.0 PERFSEER_PORT=50051
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e . -e ./client
EXPOSE 50051 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
s=g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')); \
sys.exit(0 if s.Check(h.HealthCheckRequest(), timeout=3).status == h.HealthCheckResponse.SERVING else 1)"
ENTRYPOINT ["perfseer", "serve"]
CMD ["--host", "0.0.0.0", "--port", "50051", "--metrics-port", "9100"]
