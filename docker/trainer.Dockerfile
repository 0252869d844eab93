# Trainer: the single dataset writer, which launches `perfseer retrain` after enough new results.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e . -e ./client
ENTRYPOINT ["perfseer", "worker"]
CMD ["--write-results", "--max-jobs", "0", "--device", "cpu"]
