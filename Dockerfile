# syntax=docker/dockerfile:1
# The translator image: Celery workers of the image pipeline, Flower, and the translator CLI.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ImageMagick's MagickWand library only (no command line, no Ghostscript, no delegates), with a
# hardened policy: see docker/policy.xml.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagickwand-6.q16-6 \
    && rm -rf /var/lib/apt/lists/*
COPY docker/policy.xml /etc/ImageMagick-6/policy.xml

# A non-root user; /shared is the volume the workers share (input/ for local sources, output/ for
# resized images). Docker copies this ownership into a new named volume.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin translator \
    && mkdir -p /shared/input /shared/output \
    && chown -R translator:translator /shared

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY translator ./translator
COPY tasks ./tasks
COPY definitions ./definitions
COPY examples ./examples
RUN pip install . && cp examples/sample.png /shared/input/sample.png && chown translator /shared/input/sample.png

USER translator
ENV TRANSLATOR_SHARED_DIR=/shared/output \
    TRANSLATOR_INPUT_ROOT=/shared/input

CMD ["celery", "-A", "tasks", "worker", "--loglevel=INFO"]
