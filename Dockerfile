# One image for the gRPC code server (where runs execute), the webserver and the daemon of
# docker-compose.yml, and for the code location and run pods of deploy/helm/values.yaml.
#   docker build -t embed_assets .                       (Kubernetes: --build-arg EXTRAS=k8s)
# Installs exactly uv.lock, with no development tools, into /opt/venv; the runtime stage holds that
# environment and the project's settings files only, and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The uv of the Makefile, so that the lock file is read as it was written.
ARG UV_VERSION=0.13.9
ARG EXTRAS=""
RUN pip install --no-cache-dir --disable-pip-version-check uv==${UV_VERSION}
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# Dependencies first, in their own layer: a change to the code does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project ${EXTRAS:+--extra $EXTRAS}
COPY embed_assets ./embed_assets
# --no-editable: the project goes into the environment as a package, so /src is not needed later.
RUN uv sync --locked --no-dev --no-editable ${EXTRAS:+--extra $EXTRAS}

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 embed \
    && useradd --system --uid 10001 --gid embed --home-dir /opt/dagster_home --create-home embed
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster_home
# The same dagster.yaml as `dagster dev`: storage in EMBED_ASSETS_DATABASE_URL.
COPY dagster.yaml /opt/dagster_home/dagster.yaml
COPY docker/workspace.yaml /opt/embed_assets/docker/workspace.yaml
WORKDIR /opt/embed_assets
USER 10001:10001
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "embed_assets.definitions", "--location-name", "embed_assets"]
