# syntax=docker/dockerfile:1
# The gateway (app/gateway): JWT/API-key auth, rate limits, canary routing in front of Rasa. Main environment.
# Build from the repository root: docker build -f deploy/docker/gateway.Dockerfile -t switchboard-gateway .

# --- build: the main environment from requirements.lock (torch first, as `make setup` does) ----------------
FROM python:3.11-slim-bookworm AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.13.0 \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.lock

# --- run: the venv and our code, as an unprivileged user --------------------------------------------------
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --gid 0 --no-create-home switchboard
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/switchboard
COPY app/ app/
COPY params.yaml ./
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/srv/switchboard PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/tmp SWITCHBOARD_HOST=0.0.0.0 SWITCHBOARD_STATE_DIR=/tmp/switchboard SWITCHBOARD_GATEWAY_PORT=5006 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
USER 10001
EXPOSE 5006
# /health: 200 while a Rasa upstream answers, else 503 (a container without its Rasa is not healthy)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/health', timeout=4)"]
CMD ["python", "-m", "app.gateway", "serve"]
