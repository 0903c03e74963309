"""Packaging: `occipy --version`, `make dist` (a wheel with the dashboard inside, an sdist), the wheel
installed in a fresh venv serving /dashboard/, and the Dockerfile's image running `occipy serve`
with a volume for its data, under a private dockerd this test starts (test-services.md, Docker).

The image's base is python:3.11-slim-bookworm; no registry but PyPI, Debian's and npm is
reachable here, so the test builds the same kind of base (Debian bookworm with python3 and
python3-venv) with debootstrap from Debian's archive, once per machine (cached under
~/.cache/occipy), and the wheels of the locked dependencies with pip, so the build needs no
network (PIP_NO_INDEX=1).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from occipy import __version__, dashboard
from tests.integration.conftest import REPO, free_port, wait_until_up

pytestmark = pytest.mark.slow
UV = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
CACHE = Path.home() / ".cache" / "occipy"
BASE_TAR = CACHE / "bookworm-python3.tar"
BASE_IMAGE = "occipy-test-base:bookworm"


def run(args: list[str], timeout: float = 300, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_version_matches_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == project
    shown = run([sys.executable, "-m", "occipy", "--version"]).stdout.strip()
    assert shown == f"occipy, version {project}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(["make", "-s", "dist", f"DIST={out}"], cwd=REPO)
    return out


def wheel_of(dist: Path) -> Path:
    wheels = list(dist.glob("occipy-*.whl"))
    assert len(wheels) == 1, list(dist.iterdir())
    return wheels[0]


def test_make_dist_builds_a_wheel_with_the_dashboard_and_an_sdist(dist: Path) -> None:
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = set(wheel.namelist())
    shipped = dashboard.names()
    assert {"index.html", "style.css", "js/app.js"} <= set(shipped)
    assert {f"occipy/dashboard/static/{name}" for name in shipped} <= names
    assert {"occipy/rendering/occi-1.2.schema.json", "occipy/py.typed",
            "occipy/observability/metrics.py"} <= names
    sdists = list(dist.glob("occipy-*.tar.gz"))
    assert len(sdists) == 1
    with tarfile.open(sdists[0]) as sdist:
        members = sdist.getnames()
    root = f"occipy-{__version__}"
    assert f"{root}/src/occipy/dashboard/static/index.html" in members
    assert f"{root}/Dockerfile" in members and f"{root}/pyproject.toml" in members
    assert not [m for m in members if "/.schemathesis" in m or "/.import_linter_cache" in m or "/build/" in m]


def check_served(url: str) -> None:
    """The dashboard, the OpenAPI description and the metrics of a running server."""
    page = httpx.get(url + "/dashboard/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert b'<script type="module" src="js/app.js">' in page.content
    script = httpx.get(url + "/dashboard/js/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(url + "/dashboard/../pyproject.toml").status_code == 404
    assert httpx.get(url + "/-/openapi.json").json()["openapi"] == "3.1.0"
    assert "occipy_http_requests_total" in httpx.get(url + "/metrics").text


def test_the_wheel_in_a_fresh_venv_serves_the_dashboard(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([UV, "venv", "-q", "-p", "python3.11", str(venv)])
    run([UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel_of(dist))])
    assert run([str(venv / "bin" / "occipy"), "--version"]).stdout.strip() == f"occipy, version {__version__}"
    port = free_port()
    # Run from an empty directory: nothing may come from the source tree.
    work = tmp_path / "work"
    work.mkdir()
    server = subprocess.Popen([str(venv / "bin" / "occipy"), "serve", "--port", str(port), "--data-dir", "data"],
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}")
        check_served(f"http://127.0.0.1:{port}")
        import_path = run([str(venv / "bin" / "python"), "-c", "import occipy; print(occipy.__file__)"], cwd=work)
        assert str(venv) in import_path.stdout
    finally:
        server.terminate()
        server.wait(timeout=15)


# ---- the container image ----------------------------------------------------------------------


@dataclass
class Docker:
    socket: Path

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}", DOCKER_BUILDKIT="0")
        return run(["docker", *args], timeout=timeout, env=env)


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    """A private dockerd on a unix socket in a temp dir: no bridge, no iptables (host networking)."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("docker.io is not installed (scripts/bootstrap.sh docker-image installs it)")
    # A short path: unix socket paths are limited to 108 bytes.
    root = Path(subprocess.run(["mktemp", "-d", "/tmp/occipy-dockerd.XXXXXX"], capture_output=True, text=True,
                               check=True).stdout.strip())
    socket = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        ["dockerd", "-H", f"unix://{socket}", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "dockerd.pid"), "--bridge", "none", "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    client = Docker(socket)
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"dockerd did not start: {(root / 'dockerd.log').read_text()[-3000:]}")
        if socket.exists() and subprocess.run(["docker", "-H", f"unix://{socket}", "version"],
                                              capture_output=True, check=False).returncode == 0:
            break
        time.sleep(0.2)
    try:
        yield client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        # dockerd leaves mounts behind (its network namespace under exec/netns): deepest first
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def base_image(docker: Docker) -> str:
    """Debian bookworm with python3 and python3-venv: the image's base, made from Debian's archive."""
    if not BASE_TAR.exists():
        if shutil.which("debootstrap") is None:
            pytest.fail("debootstrap is missing: run `bash scripts/bootstrap.sh docker-image`")
        CACHE.mkdir(parents=True, exist_ok=True)
        rootfs = CACHE / "bookworm-rootfs.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs),
             "http://deb.debian.org/debian"], timeout=900)
        run(["tar", "-C", str(rootfs), "-cf", str(BASE_TAR) + ".tmp", "."], timeout=300)
        os.replace(str(BASE_TAR) + ".tmp", BASE_TAR)
        shutil.rmtree(rootfs, ignore_errors=True)
    docker("import", str(BASE_TAR), BASE_IMAGE)
    return BASE_IMAGE


def test_the_docker_image_serves_with_a_data_volume(docker: Docker, dist: Path, tmp_path: Path) -> None:
    base = base_image(docker)
    context = tmp_path / "context"
    (context / "dist" / "wheels").mkdir(parents=True)
    shutil.copy(REPO / "Dockerfile", context / "Dockerfile")
    shutil.copy(REPO / ".dockerignore", context / ".dockerignore")
    shutil.copy(wheel_of(dist), context / "dist")
    # The locked dependencies as wheels: the image builds without network access.
    requirements = run([UV, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "-q"], cwd=REPO)
    (tmp_path / "requirements.txt").write_text(requirements.stdout)
    run([UV, "venv", "-q", "--seed", "-p", "python3.11", str(tmp_path / "pip")])  # a pip of its own
    run([str(tmp_path / "pip" / "bin" / "pip"), "wheel", "-q", "--disable-pip-version-check",
         "-w", str(context / "dist" / "wheels"), "-r", str(tmp_path / "requirements.txt")], timeout=600)
    image = "occipy-test:latest"
    docker("build", "-q", "--network", "none", "--build-arg", f"BASE={base}", "--build-arg", "PIP_NO_INDEX=1",
           "-t", image, str(context))
    inspected = docker("image", "inspect", "-f", "{{json .Config.Cmd}} {{json .Config.Volumes}} {{.Config.User}}",
                       image).stdout
    assert '["serve"]' in inspected and "/var/lib/occipy" in inspected and "occipy" in inspected
    assert docker("run", "--rm", image, "--version").stdout.strip() == f"occipy, version {__version__}"

    port = free_port()
    volume = "occipy-test-data"
    name = "occipy-test"

    def start() -> None:
        # Host networking (the private dockerd has no bridge); the image's default command.
        docker("run", "-d", "--name", name, "--network", "host", "-e", f"OCCIPY_PORT={port}",
               "-v", f"{volume}:/var/lib/occipy", image)
        try:
            wait_until_up(f"http://127.0.0.1:{port}", timeout=60)
        except RuntimeError:
            logs = docker("logs", name).stdout + docker("logs", name).stderr
            raise AssertionError(f"the container did not serve: {logs[-3000:]}") from None

    start()
    try:
        url = f"http://127.0.0.1:{port}"
        check_served(url)
        logs = docker("logs", name)
        assert "on http://0.0.0.0:" in logs.stdout + logs.stderr  # bound to every address inside
        created = httpx.post(url + "/storage/", headers={"Content-Type": "application/occi+json"},
                             json={"kind": "http://schemas.ogf.org/occi/infrastructure#storage", "title": "kept",
                                   "attributes": {"occi.storage.size": 1.0}})
        assert created.status_code == 201, created.text
        location = httpx.URL(created.headers["Location"]).path
        # The data lives in the volume: a new container with the same volume still has it.
        docker("rm", "-f", name)
        start()
        assert httpx.get(url + location, headers={"Accept": "application/occi+json"}).json()["title"] == "kept"
        # the health check of the image passes (it reads OCCIPY_PORT)
        deadline = time.monotonic() + 60
        while (health := docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()) == "starting":
            assert time.monotonic() < deadline, "the health check never ran"
            time.sleep(1)
        assert health == "healthy", docker("inspect", "-f", "{{json .State.Health}}", name).stdout
    finally:
        subprocess.run(["docker", "-H", f"unix://{docker.socket}", "rm", "-f", name], capture_output=True, check=False)


def test_the_systemd_unit_of_docs_deploy_verifies(tmp_path: Path) -> None:
    """The unit file example in docs/deploy.md passes `systemd-analyze verify`."""
    import re

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    text = (REPO / "docs" / "deploy.md").read_text()
    unit = re.search(r"```ini\n# /etc/systemd/system/occipy.service\n(.*?)```", text, re.DOTALL)
    assert unit, "docs/deploy.md has no occipy.service block"
    binary = tmp_path / "occipy"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    path = tmp_path / "occipy.service"
    path.write_text(unit.group(1).replace("/opt/occipy/bin/occipy", str(binary)))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "occipy.service" not in result.stderr, result.stderr
