# syntax=docker/dockerfile:1
# The action server (app/actions/server.py): the bot's custom actions, knowledge answers, LLM tiers.
# Its image also runs `python -m app.scaleout`, the Rasa pod's init step (Rasa's endpoints and credentials).
# Needs the pipeline's knowledge index (knowledge/index: `dvc repro build_index`, or `dvc pull`) before the build.
# Build from the repository root: docker build -f deploy/docker/actions.Dockerfile -t switchboard-actions .

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
# nlu/: the code the actions import and Rasa's endpoints/credentials templates, not the models
COPY nlu/*.py nlu/*.yml nlu/*.csv nlu/
COPY knowledge/ knowledge/
COPY params.yaml ./
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/srv/switchboard PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/tmp SWITCHBOARD_HOST=0.0.0.0 SWITCHBOARD_STATE_DIR=/tmp/switchboard SWITCHBOARD_ACTION_PORT=5055 \
    SWITCHBOARD_MODEL_CACHE=/opt/switchboard/models \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# the ONNX export of the bundled MiniLM, made once here (at run time the file system is read-only)
RUN python -c "from knowledge.embeddings import local_embed_model; local_embed_model('onnx')"
USER 10001
EXPOSE 5055
# rasa_sdk's /health
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5055/health', timeout=4)"]
CMD ["python", "-m", "app.actions.server"]
