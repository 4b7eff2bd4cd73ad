# syntax=docker/dockerfile:1
# Rasa 3.6 (Python 3.10) with our components (nlu/components, app/channels) and the served model baked in: the
# image tag is the model version (blue-green and canary switch images, README "Deploying on Kubernetes").
# Needs the pipeline's served model (nlu/serving/model.tar.gz: `dvc repro register_nlu`) before the build.
# Build from the repository root: docker build -f deploy/docker/rasa.Dockerfile -t switchboard-rasa:<model> .

# --- build: the Rasa environment from requirements-rasa.lock ----------------------------------------------
FROM python:3.10-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements-rasa.lock /tmp/requirements-rasa.lock
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements-rasa.lock

# --- run: the venv, our Rasa-side code and the model, as an unprivileged user -----------------------------
FROM python:3.10-slim-bookworm
RUN useradd --system --uid 10001 --gid 0 --no-create-home switchboard
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/switchboard
COPY app/ app/
COPY nlu/*.py nlu/
COPY nlu/components/ nlu/components/
COPY knowledge/__init__.py knowledge/injection.py knowledge/
COPY nlu/serving/model.tar.gz /srv/switchboard/model.tar.gz
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/srv/switchboard PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PYTHONWARNINGS=ignore::DeprecationWarning HOME=/tmp RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 \
    SWITCHBOARD_STATE_DIR=/tmp/switchboard
USER 10001
EXPOSE 5005
# the REST channel's health (/webhooks/rest/): "ok" once the model is loaded
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5005/webhooks/rest/', timeout=4)"]
# The endpoints and credentials files are written into the state dir by `python -m app.scaleout` (the
# actions image; the Kubernetes manifests run it as this pod's init container).
CMD ["python", "-m", "nlu.rasa_cli", "run", "--model", "/srv/switchboard/model.tar.gz", "--port", "5005", \
     "--interface", "0.0.0.0", "--credentials", "/tmp/switchboard/credentials.yml", \
     "--endpoints", "/tmp/switchboard/endpoints.yml"]
