"""The deployment files, read as their tools read them: the compose stack (services, healthchecks,
dependencies, every setting from .env.example), the Dockerfile, both instance configurations
(dagster.yaml, and the instance the Helm values render) through Dagster's own instance schema, and
both workspaces loading the code location."""

import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from embed_assets.instance import project_instance
from embed_assets.lib.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("code", "webserver", "daemon")
# ${NAME} or ${NAME:-default} in the compose file.
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}


def resolved(value: str, env: dict[str, str]) -> str:
    """A compose value with its variables substituted from `env`, as `docker compose` does."""
    return VARIABLE.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)


def test_compose_runs_pgvector_ollama_and_dagster_each_after_what_it_needs():
    services = compose()["services"]
    assert set(services) == {"postgres", "ollama", "ollama-pull", *APP_SERVICES}
    postgres = services["postgres"]
    assert postgres["image"].startswith("pgvector/pgvector:")
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"][1]
    assert services["ollama"]["image"].startswith("ollama/ollama:")
    assert "ollama:/root/.ollama" in services["ollama"]["volumes"]
    # The one-shot pull: against the ollama service once it is healthy, never restarted.
    pull = services["ollama-pull"]
    assert pull["entrypoint"][:2] == ["ollama", "pull"]
    assert pull["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert pull["depends_on"] == {"ollama": {"condition": "service_healthy"}}
    assert pull["restart"] == "no"
    for name in ("postgres", "ollama", *APP_SERVICES):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "unless-stopped", name
    for name in APP_SERVICES:
        needs = services[name]["depends_on"]
        assert needs["postgres"] == {"condition": "service_healthy"}, name
        assert needs["ollama-pull"] == {"condition": "service_completed_successfully"}, name
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code"] == {"condition": "service_healthy"}
        assert "/opt/embed_assets/docker/workspace.yaml" in services[name]["command"]
    code = services["code"]["command"]
    assert code[code.index("-m") + 1] == "embed_assets.definitions"
    assert code[code.index("-p") + 1] == str(
        yaml.safe_load((ROOT / "docker/workspace.yaml").read_text())["load_from"][0]["grpc_server"][
            "port"
        ]
    )
    assert set(compose()["volumes"]) == {"pgdata", "ollama"}


def test_every_compose_setting_comes_from_env_example_with_the_same_default():
    text = (ROOT / "docker-compose.yml").read_text()
    example = env_example()
    used = {}
    for name, default in VARIABLE.findall(text):
        assert name in example, f"{name} is used by docker-compose.yml but not in .env.example"
        assert default == example[name], f"{name}: default {default!r} != {example[name]!r}"
        used[name] = default
    assert set(used) == set(example), f"unused in compose: {set(example) - set(used)}"


def test_the_stack_embeds_with_the_ollama_model_it_pulls_by_default():
    services = compose()["services"]
    example = env_example()
    environment = {
        name: resolved(value, example) for name, value in services["code"]["environment"].items()
    }
    settings = Settings.from_env(environment)  # every value valid, as the code server reads it
    assert (settings.provider, settings.model) == ("ollama", "nomic-embed-text")
    assert settings.base_url == "http://ollama:11434"  # the ollama service's name and port
    assert resolved(services["ollama-pull"]["entrypoint"][2], example) == settings.model
    assert settings.database_url == (
        f"postgresql://{example['POSTGRES_USER']}:{example['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{example['POSTGRES_DB']}"
    )
    for name in APP_SERVICES:  # one image, one environment
        assert services[name]["environment"] == services["code"]["environment"]
        assert services[name]["build"] == "."


def test_the_dockerfile_is_multi_stage_slim_non_root_and_installs_the_lock():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line.split() for line in lines if line.startswith("FROM ")]
    assert [stage[-1] for stage in stages] == ["build", "runtime"]
    base = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    assert base.endswith("-slim-bookworm")
    runtime = lines[lines.index(" ".join(stages[1])) :]
    build = lines[: lines.index(" ".join(stages[1]))]
    make_uv = re.search(r"UV_VERSION := (\S+)", (ROOT / "Makefile").read_text()).group(1)
    assert f"ARG UV_VERSION={make_uv}" in build
    syncs = [line for line in build if line.startswith("RUN uv sync")]
    assert syncs and all("--locked" in line and "--no-dev" in line for line in syncs)
    assert "--no-editable" in syncs[-1]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert not any("pip install" in line or "uv " in line for line in runtime)
    user = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_no_deployment_file_names_a_setting_that_does_not_exist():
    known = {f"EMBED_ASSETS_{f.name.upper()}" for f in fields(Settings)} | {
        "EMBED_ASSETS_ALERT_WEBHOOK_URL"
    }
    for path in ("dagster.yaml", "docker-compose.yml", ".env.example", "deploy/helm/values.yaml"):
        for name in re.findall(r"EMBED_ASSETS_[A-Z_]*[A-Z]", (ROOT / path).read_text()):
            assert name in known, f"{path} names {name}, which is not a setting"


def test_dagster_yaml_loads_through_dagsters_instance_schema_and_builds_the_instance(settings):
    config, _ = dagster_instance_config(str(ROOT))
    assert config["storage"]["custom"]["class"] == "ProjectPostgresStorage"
    with project_instance(settings) as instance:  # what `dagster dev` and the CLI build from it
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        # Dagster's defaults, relied on by the comments and the run-queue benchmark.
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.dequeue_use_threads  # N queued runs launch at once
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert [limit["key"] for limit in concurrency.run_queue_config.tag_concurrency_limits] == [
            "dagster/backfill"
        ]
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 2)
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.get_settings("sensors")["use_threads"]
        assert instance.get_settings("backfills")["use_threads"]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _snake_keys(values: dict) -> dict:
    return {_snake(k): v for k, v in values.items()}


def render_instance(values: dict) -> dict:
    """The instance part of the Dagster chart's `configmap-instance.yaml` for the values this
    project sets (storage from `postgresql`, run launcher, run coordinator, concurrency, run
    monitoring and retries, daemon threads, telemetry), as that template renders them."""
    pg = values["postgresql"]
    postgres = {
        "postgres_db": {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
        }
    }
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    concurrency = values["concurrency"]
    return {
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": postgres,
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": postgres,
        },
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": postgres,
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "load_incluster_config": k8s["loadInclusterConfig"],
                "job_namespace": "embed-assets",
                "image_pull_policy": k8s["imagePullPolicy"],
                "service_account_name": "embed-assets-dagster",
                "dagster_home": {"env": "DAGSTER_HOME"},
                "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
                "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
                "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
                + [c["name"] for c in k8s["envConfigMaps"]],
                "env_secrets": [s["name"] for s in k8s["envSecrets"]],
                "run_k8s_config": {_snake(k): v for k, v in k8s["runK8sConfig"].items()},
            },
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": _snake_keys(daemon["runCoordinator"]["config"]["queuedRunCoordinator"]),
        },
        "concurrency": {
            "pools": _snake_keys(concurrency["pools"]),
            "runs": _snake_keys(concurrency["runs"]),
        },
        "run_monitoring": _snake_keys(daemon["runMonitoring"]),
        "run_retries": _snake_keys(daemon["runRetries"]),
        "sensors": _snake_keys(daemon["sensors"]),
        "schedules": _snake_keys(daemon["schedules"]),
        "backfills": _snake_keys(daemon["backfills"]),
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_the_helm_values_render_an_instance_dagster_accepts(tmp_path):
    values = yaml.safe_load((ROOT / "deploy/helm/values.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(render_instance(values)))
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any value the schema refuses
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["concurrency"]["pools"]["default_limit"] == 4
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    # The code location is the module the compose code server serves, as the image's user.
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "embed_assets.definitions"]
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert deployment["podSecurityContext"]["runAsUser"] == int(uid)
    pod = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def _loaded_locations(workspace: Path, instance: dg.DagsterInstance) -> dict:
    """Each code location of the workspace file, loaded as the webserver and daemon load it, with
    its asset keys."""
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
        request = context.create_request_context()
        names = request.code_location_names
        errors = {name: request.get_code_location_error(name) for name in names}
        assert not any(errors.values()), errors
        return {
            name: sorted(
                snap.asset_key.to_user_string()
                for repo in request.get_code_location(name).get_repositories().values()
                for snap in repo.get_asset_node_snaps()
            )
            for name in names
        }


def test_both_workspaces_load_the_code_location(settings, tmp_path, monkeypatch):
    """workspace.yaml (`dagster dev`: a server Dagster starts from the module), and
    docker/workspace.yaml against the compose `code` service's own command, run here on 127.0.0.1
    (the file's host `code` is the service's name on the compose network). The code server starts
    first, and both load at once."""
    monkeypatch.chdir(ROOT)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = compose()["services"]["code"]["command"]
    command[command.index("-h") + 1] = "127.0.0.1"
    command[command.index("-p") + 1] = str(port)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    steps = ("chunks", "cluster_index", "embeddings", "rows")
    expected = {"embed_assets": [f"repositories/{step}" for step in steps]}
    workspace = yaml.safe_load((ROOT / "docker/workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=port)
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    def docker_workspace(instance: dg.DagsterInstance) -> dict:
        deadline = time.monotonic() + 90
        while server.poll() is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        return _loaded_locations(tmp_path / "workspace.yaml", instance)

    try:
        with dg.instance_for_test() as instance, ThreadPoolExecutor(2) as pool:
            docker = pool.submit(docker_workspace, instance)
            assert _loaded_locations(ROOT / "workspace.yaml", instance) == expected
            assert docker.result(timeout=120) == expected
    finally:
        server.terminate()
        server.wait(timeout=30)
