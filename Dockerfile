# The PyHeart engine. Used by docker-compose.yml; Kafka runs in its own container there.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first (changes less often than the example pipelines), then the examples.
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY adapters ./adapters
COPY transformers ./transformers
COPY validators ./validators
RUN pip install . \
    && useradd --system --no-create-home --uid 10001 pyheart
COPY examples ./examples

USER pyheart
CMD ["pyheart", "run", "-c", "/app/examples/pipeline.yaml"]
