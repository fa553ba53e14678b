# Tradeport application image: one image for every role of the full stack (docker-compose.yml
# runs it as gunicorn, daphne, Celery worker, Celery beat and the one-shot migrate job).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    STATIC_ROOT=/app/staticfiles

WORKDIR /app

# The home directory is the app user's only writable place besides static files
# (gunicorn keeps its control socket there).
RUN groupadd --system --gid 10001 tradeport \
    && useradd --system --uid 10001 --gid tradeport --create-home --home-dir /home/tradeport \
       --shell /usr/sbin/nologin tradeport

# Dependencies first, so a code change reuses this layer.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays owned by root (read-only for the app); only collected static files are written.
COPY . .
RUN mkdir -p /app/staticfiles && chown tradeport:tradeport /app/staticfiles

USER tradeport
EXPOSE 8000 8001
# HTTP by default; docker-compose.yml gives each service its own command (docs/adr/0001).
CMD ["gunicorn", "portal.wsgi:application", "-k", "sync", "--bind", "0.0.0.0:8000"]
