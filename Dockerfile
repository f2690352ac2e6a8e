# The MNIST digit-recognition service: `mnist-api serve` (uvicorn) as uid 10001 on port 8000.
#
#   docker build -t mnist-service .                      # the model is mounted at run time
#   docker build -t mnist-service --build-arg TRAIN_MODEL=1 .   # the default CNN baked in
#
# Stages:
#   deps     python:3.11-slim + a venv (/opt/venv) with the service's dependencies, pinned by
#            requirements.lock: LiteRT serves the model, so no TensorFlow. The lock also pins
#            TensorFlow and the dev tools (pytest, mypy, ruff, playwright, ...); it is used as a
#            constraints file so those stay out of the image.
#   builder  builds the project wheel (non-editable: cql/ is packaged as mnist_api/_cql) and
#            installs it into the venv.
#   model    with --build-arg TRAIN_MODEL=1, installs the training extra (TensorFlow) and trains
#            the default CNN into /app/models (the four MNIST files are downloaded from the
#            public mirrors; about 10 minutes on 2 cores). It only needs src/mnist_core and
#            src/mnist_train, so changes to the API do not retrain. Without it, /app/models is
#            empty. Nothing of this stage but /app/models reaches the final image.
#   runtime  the final image: only the venv and /app/models, no compilers, no sources, no
#            TensorFlow (MNIST_API_RUNTIME=tensorflow is for installs with the training extra).
#
# Model: MNIST_API_MODEL_PATH=/app/models. Either bake it (TRAIN_MODEL=1), or mount a folder
# written by `mnist-train train --output DIR` (an artifact folder, or one whose LATEST names one)
# read-only over it:  docker run -v "$PWD/models:/app/models:ro" -p 8000:8000 mnist-service
# `mnist-api serve` refuses to start, with a clear message, when no model is there.
#
# Storage: SQLite by default, in /app/var (owned by the app user; mount a volume there to keep the
# predictions), or Cassandra with MNIST_API_STORE=cassandra (see compose.yaml).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}"
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml requirements.lock ./
# The runtime dependencies are the ones pyproject.toml declares; every package they pull in is
# pinned by the lock (tests/test_deploy_files.py checks the lock covers them all).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/runtime-requirements.txt \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['train']))" \
        > /tmp/train-requirements.txt \
    && pip install --requirement /tmp/runtime-requirements.txt --constraint requirements.lock \
    && pip check

FROM deps AS builder
COPY README.md LICENSE ./
COPY src ./src
COPY cql ./cql
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /tmp/dist . \
    && pip install --no-deps /tmp/dist/*.whl \
    && pip check \
    && python -c "import importlib.resources as r; c = r.files('mnist_api') / '_cql'; assert any(p.name.endswith('.cql') for p in c.iterdir()), 'no packaged migrations'" \
    && python -c "import sys, mnist_api.cli, mnist_api.app, mnist_core.lite; assert 'tensorflow' not in sys.modules"
# Left out of the image: the installers. LiteRT's ahead-of-time compiler plugins and tools for
# phone NPUs (ai_edge_litert/aot, vendors, tools: about 25 MB) are never loaded on a CPU.
RUN site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/pip" "$site/setuptools" "$site/_distutils_hack" "$site/distutils-precedence.pth" \
        "$site/ai_edge_litert/aot" "$site/ai_edge_litert/vendors" "$site/ai_edge_litert/tools" \
        /opt/venv/bin/pip*

FROM deps AS model
ARG TRAIN_MODEL=0
COPY src/mnist_core /src/train/mnist_core
COPY src/mnist_train /src/train/mnist_train
RUN --mount=type=cache,target=/var/cache/mnist --mount=type=cache,target=/root/.cache/pip \
    mkdir -p /app/models \
    && if [ "$TRAIN_MODEL" = "1" ]; then \
        pip install --requirement /tmp/train-requirements.txt --constraint /src/requirements.lock \
        && PYTHONPATH=/src/train \
        python -m mnist_train train --model cnn --output /app/models --data-dir /var/cache/mnist; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MNIST_API_HOST=0.0.0.0 \
    MNIST_API_PORT=8000 \
    MNIST_API_WORKERS=1 \
    MNIST_API_AUTH=required \
    MNIST_API_MODEL_PATH=/app/models \
    MNIST_API_SQLITE_PATH=/app/var/predictions.sqlite3
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0750 /app/var
COPY --from=builder /opt/venv /opt/venv
# Read-only to the service. A folder mounted here replaces what the model stage put in.
COPY --from=model /app/models /app/models
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MNIST_API_PORT', '8000'), timeout=4)"]
# uvicorn; MNIST_API_HOST, MNIST_API_PORT and MNIST_API_WORKERS (one model per worker process).
CMD ["mnist-api", "serve"]
