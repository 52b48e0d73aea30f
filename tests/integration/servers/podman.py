"""Podman for the container tests: a stand-in Python base image, the project's image, containers.

No image registry is reachable, so ``base_image()`` makes the stand-in for ``python:3.11-slim``
from Debian packages (``debootstrap --variant=minbase bookworm`` with python3, python3-venv and
passwd; bookworm's Python is 3.11), with this machine's CA bundle and pip index settings (the
network re-signs TLS, and the build's pip must ask the same indexes), and imports it. An image of
the same recipe already present is reused; a fresh machine builds it once. ``build_image()``
builds ``deploy/Dockerfile`` on it through its ``PYTHON_IMAGE`` argument, in Docker format (the
OCI format has no ``HEALTHCHECK``), with its layers cached as a builder's are: the build stage's
dependency layer (some 40 s of pip) is kept under a tag of its own and reused until
``pyproject.toml`` or its README and LICENSE change, for a day at most; the build stage's code
layers after it are removed at once (each run's would be left behind, 10 MB a run), the image's
own with its tag. Containers get explicit ulimits:
podman's defaults exceed this machine's hard limits and runc refuses them. Tests use the
session-scoped ``podman`` and ``bridge_image`` fixtures and the ``containers`` factory, whose
containers and volumes are removed afterwards.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import ROOT, require_binary, unavailable

__all__ = [
    "HARDENED",
    "BridgeImage",
    "Container",
    "Containers",
    "Podman",
    "bridge_image",
    "containers",
    "podman",
]

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "passwd", "ca-certificates")
BASE_REPOSITORY = "localhost/exesdb-bridge-test-python"
# The project's image, one tag per run; a run removes its own unless it was interrupted.
IMAGE_REPOSITORY = "localhost/exesdb-bridge-test"
# The build stage's dependency layer, kept between runs under a tag naming its image id.
DEPENDENCIES_REPOSITORY = "localhost/exesdb-bridge-test-dependencies"
# Older than this, a run's image is one such run left behind (a run lasts minutes), and a
# dependency layer is installed afresh (a dependency's new release reaches the image a day late).
STALE_IMAGE_AGE = "24h"
STATE_DIR = "/var/lib/exesdb-bridge"
# As production runs it: read-only root without podman's tmpfs mounts, no capabilities.
HARDENED = ("--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL")
CA_IN_IMAGE = "/etc/ssl/certs/ca-certificates.crt"
# The pip settings that decide where packages come from and whom to trust.
PIP_INDEX_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "cert")
# Trimmed from the stand-in: documentation and package caches no image needs.
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt", "var/lib/apt")


class Podman:
    """The podman command, with the flags every container here needs."""

    def __init__(self) -> None:
        self.binary = require_binary("podman")

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``podman args``; fails the test on a non-zero exit when ``check``."""
        completed = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and completed.returncode != 0:
            pytest.fail(
                f"podman {' '.join(args)} exited {completed.returncode}: {completed.stderr}"
            )
        return completed

    @staticmethod
    def ulimits() -> list[str]:
        """``--ulimit`` flags runc accepts here: podman's defaults are above the hard limits.

        Open files: this process's hard limit. Processes: also at most ``kernel.pid_max``, to
        which podman lowers its own limit before it starts runc.
        """
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
        shown = "-1" if nofile == resource.RLIM_INFINITY else str(nofile)
        return ["--ulimit", f"nofile={shown}:{shown}", "--ulimit", f"nproc={nproc}:{nproc}"]

    def image_exists(self, tag: str) -> bool:
        """True when an image with this tag is in local storage."""
        return self("image", "exists", tag, check=False).returncode == 0


# -- the stand-in base image --


@dataclass(frozen=True)
class PipSettings:
    """The host's pip index settings as a pip.conf, and the local paths they name."""

    conf: str
    paths: tuple[str, ...]
    ca_bundle: Path

    def build_volumes(self) -> list[str]:
        """``--volume`` flags that make the local indexes visible to the build, read-only."""
        return [flag for path in self.paths for flag in ("--volume", f"{path}:{path}:ro")]


@cache  # asked by the base image and the build: pip's start-up is most of a second each
def host_pip_settings() -> PipSettings:
    """What ``pip config list`` says about indexes here; environment variables win over files."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    found: dict[str, str] = {}
    for line in sorted(listed.splitlines(), key=lambda entry: entry.startswith(":env:")):
        key, _, value = line.partition("=")
        scope, _, name = key.partition(".")
        if scope in {"global", "install", ":env:"} and name in PIP_INDEX_KEYS:
            found[name] = value.strip().strip("'\"")
    ca_bundle = Path(found.pop("cert", "") or ssl.get_default_verify_paths().cafile or CA_IN_IMAGE)
    lines, paths = ["[global]", f"cert = {CA_IN_IMAGE}"], []
    for name, value in sorted(found.items()):
        kept = []
        for item in value.split():
            local = Path(urlsplit(item).path if item.startswith("file://") else item)
            if local.is_absolute():
                if not local.exists():
                    continue  # pip only warns about it on the host
                # A file:// index links its files relative to itself (../../files/...).
                paths.append(str(local.parent if item.startswith("file://") else local))
            kept.append(item)
        if kept:
            lines.append(f"{name} = {' '.join(kept)}")
    return PipSettings("\n".join(lines) + "\n", tuple(sorted(set(paths))), ca_bundle)


def base_image(podman: Podman, workdir: Path) -> str:
    """The stand-in for ``python:3.11-slim``: reused when its recipe was built before."""
    pip = host_pip_settings()
    # The recipe: what goes into the image (not this module's text, so that an edit elsewhere in
    # it does not build, and leave behind, another base of some 300 MB).
    made_of = repr((SUITE, PACKAGES, TRIMMED, CA_IN_IMAGE, pip.paths)).encode()
    recipe = hashlib.sha256(made_of + pip.conf.encode() + pip.ca_bundle.read_bytes()).hexdigest()[
        :12
    ]
    tag = f"{BASE_REPOSITORY}:{SUITE}-{recipe}"
    if podman.image_exists(tag):
        return tag
    debootstrap = require_binary("debootstrap")
    if os.geteuid() != 0:
        unavailable("debootstrap needs root to build the stand-in base image")
    rootfs = workdir / "rootfs"
    try:
        completed = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if completed.returncode != 0:
            pytest.fail(f"debootstrap failed: {completed.stdout[-2000:]}{completed.stderr[-2000:]}")
        for trimmed in TRIMMED:
            shutil.rmtree(rootfs / trimmed, ignore_errors=True)
        (rootfs / CA_IN_IMAGE.lstrip("/")).write_bytes(pip.ca_bundle.read_bytes())
        (rootfs / "etc/pip.conf").write_text(pip.conf)
        for path in pip.paths:  # else the build would leave these mount points in its image
            (rootfs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        _import(podman, rootfs, tag)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tag


def _import(podman: Podman, rootfs: Path, tag: str) -> None:
    """``tar -C rootfs -c . | podman import - tag``."""
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(
            [podman.binary, "import", "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if imported.returncode != 0 or tar.returncode != 0:
        pytest.fail(f"podman import failed: {imported.stderr}")


def remove_stale_images(podman: Podman, *, base: str) -> None:
    """Remove the project's images that interrupted runs left, once a day old (some 70 MB
    each), the dependency layers a day old (the current one too: installed afresh), then the
    base images of older recipes (some 300 MB each), all but ``base``. Only
    ``IMAGE_REPOSITORY``'s, ``DEPENDENCIES_REPOSITORY``'s and ``BASE_REPOSITORY``'s tags
    (podman's reference filter matches the repository whole); ``podman rmi`` without
    ``--force`` leaves an image a container uses or another image is built on, and of an image
    with other tags only this one goes."""
    for repository in (IMAGE_REPOSITORY, DEPENDENCIES_REPOSITORY, BASE_REPOSITORY):
        listed = podman(
            "images",
            f"--filter=reference={repository}",
            f"--filter=until={STALE_IMAGE_AGE}",
            "--format={{.Repository}}:{{.Tag}}",
            check=False,
        )
        for tag in listed.stdout.split():
            if tag.startswith(f"{repository}:") and tag != base:
                podman("rmi", tag, check=False)


def build_image(podman: Podman, base: str, tag: str, revision: str, workdir: Path) -> str:
    """``deploy/Dockerfile`` built from this tree on ``base`` as ``revision``; returns the tag.

    Built twice with the layers cached: its build stage alone first (the id of its last layer,
    which the second build reuses), then the image. The build stage's dependency layer is
    tagged in ``DEPENDENCIES_REPOSITORY``, and the build stage's later layers removed: podman
    removes an untagged image's untagged parents with it, down to that tag.
    """
    deploy = ROOT / "deploy"
    stage_id = workdir / "build-stage.id"
    common = [
        "build",
        "--format=docker",
        "--pull=never",
        "--layers=true",
        "--network=host",
        *podman.ulimits(),
        *host_pip_settings().build_volumes(),
        f"--build-arg=PYTHON_IMAGE={base}",
        f"--file={deploy / 'Dockerfile'}",
        f"--ignorefile={deploy / 'Dockerfile.dockerignore'}",
    ]
    podman(*common, "--target=build", f"--iidfile={stage_id}", str(ROOT), timeout=600)
    stage = stage_id.read_text().strip()
    dependencies = _dependency_layer(podman, stage)
    if dependencies is not None:
        name = dependencies.removeprefix("sha256:")[:12]
        podman("tag", dependencies, f"{DEPENDENCIES_REPOSITORY}:{name}")
    podman(*common, f"--build-arg=REVISION={revision}", f"--tag={tag}", str(ROOT), timeout=600)
    podman("rmi", stage, check=False)
    return tag


def _dependency_layer(podman: Podman, stage: str) -> str | None:
    """The id of the build stage's layer that installed the dependencies: the nearest of
    ``stage``'s ancestors made by a ``pip install`` without ``--no-deps``. None when the stage
    is gone already (another run from the same tree removed it: it is rebuilt, uncached)."""
    image = stage
    while image:
        made_by = podman("history", "--no-trunc", "--format={{.CreatedBy}}", image, check=False)
        step = made_by.stdout.splitlines()[0] if made_by.stdout else ""
        if made_by.returncode != 0:
            return None
        if "pip install" in step and "--no-deps" not in step:
            return image
        parent = podman("image", "inspect", "--format={{.Parent}}", image, check=False)
        image = parent.stdout.strip() if parent.returncode == 0 else ""
    return None


@dataclass(frozen=True)
class BridgeImage:
    """The project's image built for this run, the stand-in it was built on, its revision."""

    tag: str
    base: str
    revision: str


# -- containers --


@dataclass(frozen=True)
class Container:
    """One container, by name."""

    podman: Podman
    name: str

    def inspect(self, template: str) -> str:
        """``podman inspect --format template``, stripped."""
        return self.podman("inspect", "--format", template, self.name).stdout.strip()

    def logs(self) -> str:
        """What the container printed so far."""
        completed = self.podman("logs", self.name, check=False)
        return completed.stdout + completed.stderr

    def exec(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the running container (as its user)."""
        flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return self.podman("exec", *flags, self.name, *args, check=False)

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """Run the image's HEALTHCHECK once now (``podman healthcheck run``)."""
        return self.podman("healthcheck", "run", self.name, check=False)

    def running(self) -> bool:
        """True while the container runs; fails the test when it has exited."""
        state = self.inspect("{{.State.Status}}")
        if state == "exited":
            pytest.fail(f"container {self.name} exited: {self.logs()}")
        return state == "running"


class Containers:
    """Containers and volumes made for one test or module; ``close()`` removes them all."""

    def __init__(self, podman: Podman, image: BridgeImage) -> None:
        self.podman = podman
        self.image = image
        self._containers: list[str] = []
        self._volumes: list[str] = []

    def volume(self) -> str:
        """A new named volume."""
        name = f"exesdb-bridge-test-{uuid.uuid4().hex[:12]}"
        self._volumes.append(name)
        self.podman("volume", "create", name)
        return name

    def run(
        self,
        env: dict[str, str],
        *,
        volume: str | None = None,
        flags: tuple[str, ...] = (),
        command: tuple[str, ...] = (),
    ) -> Container:
        """Start the image detached on the host network; ``volume`` is mounted as its state,
        ``command`` (the image's ``run`` when empty) follows its entrypoint."""
        name = f"exesdb-bridge-test-{uuid.uuid4().hex[:12]}"
        self._containers.append(name)
        options = self._options(env, volume, flags)
        self.podman("run", "--detach", f"--name={name}", *options, *command)
        return Container(self.podman, name)

    def run_to_exit(
        self,
        env: dict[str, str],
        *,
        volume: str | None = None,
        flags: tuple[str, ...] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the image in the foreground until it exits, then remove it; ``volume`` is
        mounted as its state (``name:ro`` read-only)."""
        return self.podman(
            "run", "--rm", *self._options(env, volume, flags), timeout=timeout, check=False
        )

    def _options(
        self, env: dict[str, str], volume: str | None, flags: tuple[str, ...]
    ) -> list[str]:
        name, _, options = (volume or "").partition(":")
        mount = f"{name}:{STATE_DIR}:{options}" if options else f"{name}:{STATE_DIR}"
        return [
            "--network=host",  # everything it talks to, and the tests, are on 127.0.0.1
            *self.podman.ulimits(),
            *([f"--volume={mount}"] if name else []),
            *(f"--env={key}={value}" for key, value in env.items()),
            *flags,
            self.image.tag,
        ]

    def close(self) -> None:
        """Remove every container (killed if running) and volume made here."""
        for name in self._containers:
            self.podman("rm", "--force", "--time=0", name, check=False)
        for name in self._volumes:
            self.podman("volume", "rm", "--force", name, check=False)
        self._containers.clear()
        self._volumes.clear()


@pytest.fixture(scope="session")
def podman() -> Podman:
    """The podman command (missing: skipped, or failed under CI)."""
    return Podman()


@pytest.fixture(scope="session")
def bridge_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeImage]:
    """The project's image, built once per run on the stand-in base, removed afterwards (and
    those of interrupted runs a day old, before)."""
    base = base_image(podman, tmp_path_factory.mktemp("base"))
    remove_stale_images(podman, base=base)
    name = uuid.uuid4().hex[:12]
    revision = f"test-{name}"  # stands in for the commit a release build names
    workdir = tmp_path_factory.mktemp("build")
    tag = build_image(podman, base, f"{IMAGE_REPOSITORY}:{name}", revision, workdir)
    yield BridgeImage(tag, base, revision)
    podman("rmi", tag, check=False)


@pytest.fixture
def containers(podman: Podman, bridge_image: BridgeImage) -> Iterator[Containers]:
    """Start containers of the project's image; they and their volumes are removed afterwards."""
    made = Containers(podman, bridge_image)
    yield made
    made.close()
