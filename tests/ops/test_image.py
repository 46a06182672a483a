"""The image's install: requirements.lock and the project's wheel, no dev extra; every CLI command works there."""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import asyncpg
import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import settings as test_settings
from tests.ops.cli import ROOT
from tests.support.api import create_item, sign_up
from tests.support.processes import Gateway, Worker
from tests.support.scratch import grant_roles, recreate_database

SCRATCH = f"{test_settings.DATABASE}_runtime"
OWNER_URL = f"postgresql+asyncpg://opengovfood_owner@127.0.0.1:{test_settings.PRIMARY_PORT}/{SCRATCH}"
# Walks the command tree inside the runtime install and asks each command for its --help.
EVERY_HELP = """
import typer.main, typer.testing
from cli.main import app
def walk(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, [*path, name])
runner = typer.testing.CliRunner()
for path in walk(typer.main.get_command(app), []):
    result = runner.invoke(app, [*path, "--help"])
    print(result.exit_code, " ".join(path) or "-", result.output.strip().splitlines()[0], sep="\\t")
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the image's builder stage does, in a fresh virtualenv; returns its /app (alembic.ini, migrations)."""
    root = tmp_path_factory.mktemp("runtime")
    # uv does pip's work in seconds. The pinned wheels come from the package index, as for the image's build
    # (pip's cache is not uv's: a fresh machine downloads them once more), and from uv's cache after that.
    venv, uv = root / "venv", str(Path(sys.executable).with_name("uv"))
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
    subprocess.run([*install, "--require-hashes", "-r", str(ROOT / "requirements.lock")], check=True)
    source = root / "src"  # what the Dockerfile copies, so no build leftovers of the checkout get in
    for part in ("shared", "gateway", "worker", "cli"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    subprocess.run([*install, "--no-deps", str(source)], check=True)  # a wheel built from it, not editable
    app = root / "app"
    shutil.copytree(ROOT / "migrations", app / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "alembic.ini", app / "alembic.ini")
    return app


def installed(app: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a program of the runtime install from its /app, as the image does."""
    venv_bin = app.parent / "venv" / "bin"
    environment = {**os.environ, **test_settings.ENV, **(env or {}), "PATH": f"{venv_bin}{os.pathsep}/usr/bin:/bin"}
    return subprocess.run(
        [str(venv_bin / argv[0]), *argv[1:]], cwd=app, env=environment, capture_output=True, text=True, timeout=120
    )


def test_no_dev_dependency_is_installed(runtime: Path) -> None:
    probe = installed(runtime, "python", "-c", "import importlib.util as u; print(u.find_spec('httpx'))")
    assert probe.stdout.strip() == "None", "httpx is a dev dependency: the runtime must not need it"


def test_every_command_answers_help_and_version(runtime: Path) -> None:
    result = installed(runtime, "python", "-c", EVERY_HELP)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    failed = [line for line in lines if not line.startswith("0\t")]
    assert not failed, "\n".join(failed)
    names = {line.split("\t")[1] for line in lines}
    expected = {"db", "db backup", "db restore", "db stats", "db prune", "bus provision", "deadletters replay"}
    assert expected | {"health", "import items", "-"} <= names
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert installed(runtime, "opengovfood", "--version").stdout.strip() == f"opengovfood {version}"


@pytest.mark.postgres
async def test_health_current_and_a_backup_restore_round_trip(
    runtime: Path, stack: tuple[Worker, Gateway], tmp_path: Path
) -> None:
    gateway = stack[1]
    health = await asyncio.to_thread(installed, runtime, "opengovfood", "health", "--url", gateway.url)
    assert health.returncode == 0, health.stdout + health.stderr
    current = await asyncio.to_thread(installed, runtime, "opengovfood", "db", "current")
    assert re.search(r"^\w+ \(head\)$", current.stdout.strip()), current.stdout + current.stderr

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        client = await sign_up(http)
        item = await create_item(http, client, title="survives a restore")
        assert item.status_code == 201, item.text
    dump = tmp_path / "stack.dump"
    backup = await asyncio.to_thread(installed, runtime, "opengovfood", "db", "backup", str(dump))
    assert backup.returncode == 0, backup.stderr

    await recreate_database(SCRATCH)  # restored by the least-privilege owner role, as an operator would
    await asyncio.to_thread(grant_roles, SCRATCH)
    restore = await asyncio.to_thread(
        installed, runtime, "opengovfood", "db", "restore", "--yes", str(dump), env={"DATABASE_URL": OWNER_URL}
    )
    assert restore.returncode == 0, restore.stderr
    scratch = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{test_settings.PRIMARY_PORT}/{SCRATCH}")
    try:
        title = await scratch.fetchval("SELECT title FROM item WHERE id = $1", item.json()["id"])
        email = await scratch.fetchval('SELECT email FROM "user" WHERE id = $1', client.id)
    finally:
        await scratch.close()
    assert (title, email) == ("survives a restore", client.email)


def test_the_dockerfile_installs_the_lock_before_the_source() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    lock = lines.index("RUN pip install --require-hashes -r requirements.lock")
    first_source = min(i for i, line in enumerate(lines) if re.match(r"COPY (shared|gateway|worker|cli)/", line))
    assert lock < first_source
    assert any(line.startswith("HEALTHCHECK ") and "opengovfood" in line for line in lines)
    assert "postgresql-client-15" in "\n".join(lines)
    users = [line for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] != "USER root"


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev",))])
def test_the_lock_pins_what_pyproject_asks_for(lock: str, extras: tuple[str, ...]) -> None:
    """A dependency added to pyproject.toml without `make lock` fails here, not in the image build."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", (ROOT / lock).read_text(), re.MULTILINE)
    pinned = {canonicalize_name(name.split("[")[0]): version for name, version in pins}
    for requirement in wanted:
        if requirement.marker is None or requirement.marker.evaluate():
            name = canonicalize_name(requirement.name)
            assert name in pinned, f"{requirement} is not in {lock}: run make lock"
            assert requirement.specifier.contains(pinned[name]), f"{lock} pins {name}=={pinned[name]}: run make lock"
