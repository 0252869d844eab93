# GPU profiling worker: CUDA base, torch CUDA build, onnxruntime-gpu, nvidia-ml-py.
# Entrypoint: `perfseer worker`, the same command the tests run.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
 && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /app
COPY docker/requirements-worker-cuda.txt requirements.txt pyproject.toml README.md ./
RUN pip install --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0 \
 && pip install -r requirements-worker-cuda.txt
COPY . .
RUN pip install --no-deps -e . -e ./client
HEALTHCHECK --interval=30s --timeout=10s CMD python -c "import pynvml; pynvml.nvmlInit()"
ENTRYPOINT ["perfseer", "worker"]
CMD ["--device", "cuda:0"]
