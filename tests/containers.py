"""A real container engine for the template's tests, made from Debian's packages alone.

No image registry is reachable from the machines that run these tests, so nothing is
pulled. When no engine answers, a private dockerd (Debian's docker.io) is started as
root, its images kept in a cache folder between runs and its socket in a temporary one,
and stopped by its PID at the end. The base images are made here: a Python from Debian's
trixie (its python3 is 3.13) through debootstrap, and PostgreSQL and Redis stand-ins
built on it from `tests/standins/`. Compose v2 is Debian's own build of it, taken from
trixie's archive into the cache when `docker compose` is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from template import TEMPLATE_DIR

STANDINS_DIR = TEMPLATE_DIR / "tests" / "standins"
# Debian's release whose python3 (3.13) and PostgreSQL (17) the stand-ins carry: the
# container tests bake python_version=3.13 and the default postgres_version to match.
STANDIN_SUITE = "trixie"
STANDIN_PYTHON = "3.13"
STANDIN_POSTGRES = "17"
PYTHON_BASE = f"template-standin/python:{STANDIN_PYTHON}"
POSTGRES_IMAGE = f"template-standin/postgres:{STANDIN_POSTGRES}"
REDIS_IMAGE = "template-standin/redis:8"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "passwd", "ca-certificates")
# What Debian's -slim images (under python:*-slim) leave out of every package they install,
# as dpkg path filters: documentation but its copyright files, manuals, translations. The
# stand-in leaves them out too, so that an image's size measured on it is what users get.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
SLIM_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")
# Bump when the way the base image is made changes, so cached images are made again.
BASE_RECIPE = hashlib.sha256(
    json.dumps(
        [STANDIN_SUITE, BASE_PACKAGES, "ca-certificates", SLIM_EXCLUDES, SLIM_INCLUDES, 1]
    ).encode()
).hexdigest()[:16]
RECIPE_LABEL = "org.example.template.recipe"
# Compose 2.24 is the first to read `env_file` entries with `path` and `required`.
OLDEST_COMPOSE = (2, 24)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Set by .ci/run: there an engine must start, and a skip would hide that it did not.
REQUIRE_VARIABLE = "TEMPLATE_REQUIRE_CONTAINERS"


class NoEngineError(Exception):
    """No container engine could be found or started here; the message says why."""


def cache_root() -> Path:
    """Where images and tools are kept between runs: TEMPLATE_CONTAINER_CACHE or ~/.cache."""
    configured = os.environ.get("TEMPLATE_CONTAINER_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "twelve-factor-flask-template" / "containers"


def run(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its stdout and stderr decoded, kept apart."""
    completed = subprocess.run(
        command, env=env, input=input_bytes, capture_output=True, timeout=timeout, check=False
    )
    return subprocess.CompletedProcess(
        command,
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """All a command printed, stdout then stderr."""
    return result.stdout + result.stderr


def last_lines(text: str, count: int = 40) -> str:
    """The end of a command's output, where its reason is."""
    return "\n".join(text.strip().splitlines()[-count:])


def apt_install(*packages: str) -> None:
    """Install Debian packages as root, or say why they cannot be."""
    if os.geteuid() != 0:
        raise NoEngineError(
            f"{', '.join(packages)} missing and not root: install them "
            "(apt-get install docker.io debootstrap) or start a Docker engine"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        result = run(command, env=env, timeout=900)
        if result.returncode != 0:
            raise NoEngineError(f"`{' '.join(command)}` failed:\n{last_lines(said(result))}")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses, so the stand-ins come from the same."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2:
                return next(word for word in words[1:] if "://" in word)
    return DEFAULT_MIRROR


@dataclass
class Engine:
    """A Docker engine the tests may use, and the environment its client needs."""

    env: dict[str, str]
    cache: Path
    private: bool
    compose_checked: bool = field(default=False)

    def docker(
        self, *arguments: str, timeout: float = 900, input_bytes: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this engine, without raising."""
        return run(["docker", *arguments], env=self.env, timeout=timeout, input_bytes=input_bytes)

    def must(self, *arguments: str, timeout: float = 900) -> str:
        """Run the docker client and return its output; a failure shows what it printed."""
        result = self.docker(*arguments, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(
                f"`docker {' '.join(arguments)}` exited {result.returncode}:\n"
                f"{last_lines(said(result), 80)}"
            )
        return result.stdout

    def inspect(self, kind: str, name: str) -> dict[str, Any] | None:
        """What `docker KIND inspect` says of one object, or None if there is none."""
        result = self.docker(kind, "inspect", name)
        if result.returncode != 0:
            return None
        found: list[dict[str, Any]] = json.loads(result.stdout)
        return found[0]

    def build(self, context: Path, tag: str, **build_args: str) -> None:
        """Build an image from a folder; RUN steps reach the package registries through
        the host's network, as no bridge network exists on a private engine."""
        arguments = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        self.must("build", "--network=host", *arguments, "--tag", tag, str(context))

    # -- base images ----------------------------------------------------------------

    def python_base(self) -> str:
        """The stand-in for python:3.13-slim, made once and kept in the engine."""
        image = self.inspect("image", PYTHON_BASE)
        if image and (image["Config"].get("Labels") or {}).get(RECIPE_LABEL) == BASE_RECIPE:
            return PYTHON_BASE
        if shutil.which("debootstrap") is None:
            apt_install("debootstrap")
        with tempfile.TemporaryDirectory(dir=self.cache, prefix="rootfs-") as folder:
            root = Path(folder) / "root"
            command = [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                STANDIN_SUITE,
                str(root),
                debian_mirror(),
            ]
            made = run(command, timeout=900)
            if made.returncode != 0:
                raise NoEngineError(f"debootstrap failed:\n{last_lines(said(made))}")
            (root / "usr/bin/python").symlink_to("python3")
            # Trust what this host's pip trusts, so pip inside a build can reach the registry.
            for certificate in Path("/usr/local/share/ca-certificates").glob("*.crt"):
                shutil.copy(certificate, root / "usr/local/share/ca-certificates")
            trusted = run(["chroot", str(root), "update-ca-certificates"])
            if trusted.returncode != 0:
                raise NoEngineError(f"update-ca-certificates failed:\n{said(trusted)}")
            for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (root / leftovers).glob("*"):
                    if path.is_file():
                        path.unlink()
            slim_down(root)
            archive = subprocess.run(
                ["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE, check=True
            )
            imported = self.docker(
                "import",
                "--change",
                f"ENV PATH={SYSTEM_PATH}",
                "--change",
                f"LABEL {RECIPE_LABEL}={BASE_RECIPE}",
                "-",
                PYTHON_BASE,
                input_bytes=archive.stdout,
            )
            if imported.returncode != 0:
                raise NoEngineError(f"docker import failed:\n{said(imported)}")
        return PYTHON_BASE

    def postgres_standin(self) -> str:
        """Debian's PostgreSQL in an image that behaves like the official postgres one."""
        self.build(
            STANDINS_DIR / "postgres",
            POSTGRES_IMAGE,
            BASE_IMAGE=self.python_base(),
            POSTGRES_MAJOR=STANDIN_POSTGRES,
        )
        return POSTGRES_IMAGE

    def redis_standin(self) -> str:
        """Debian's redis-server in an image that behaves like the official redis one."""
        self.build(STANDINS_DIR / "redis", REDIS_IMAGE, BASE_IMAGE=self.python_base())
        return REDIS_IMAGE

    # -- compose ----------------------------------------------------------------------

    def compose(self) -> list[str]:
        """The `docker compose` command, fetching Debian's Compose v2 if it is missing."""
        if not self.compose_checked:
            if self.docker("compose", "version").returncode != 0:
                self.env["DOCKER_CONFIG"] = str(self._debian_compose())
            version = self.must("compose", "version", "--short").strip()
            numbers = tuple(int(part) for part in version.lstrip("v").split(".")[:2])
            if numbers < OLDEST_COMPOSE:
                raise NoEngineError(
                    f"docker compose {version} is older than "
                    f"{'.'.join(map(str, OLDEST_COMPOSE))}, the first that reads the baked "
                    "compose file's `env_file: {path, required}`"
                )
            self.compose_checked = True
        return ["docker", "compose"]

    def _debian_compose(self) -> Path:
        """A DOCKER_CONFIG folder whose cli-plugins hold trixie's docker-compose package."""
        config = self.cache / "docker-config"
        plugin = config / "cli-plugins" / "docker-compose"
        if plugin.is_file():
            return config
        apt = self.cache / "apt-trixie"
        (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (apt / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        sources = apt / "sources.list"
        sources.write_text(f"deb {debian_mirror()} {STANDIN_SUITE} main\n")
        # A private list and cache: the host's own apt sources are left as they are.
        options = [
            f"-oDir::Etc::SourceList={sources}",
            "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={apt / 'lists'}",
            f"-oDir::Cache={apt / 'cache'}",
            "-oAPT::Sandbox::User=root",
        ]
        updated = run(["apt-get", *options, "update", "-qq"], timeout=300)
        if updated.returncode != 0:
            raise NoEngineError(f"apt-get update for {STANDIN_SUITE} failed:\n{said(updated)}")
        with tempfile.TemporaryDirectory(dir=self.cache) as folder:
            fetched = subprocess.run(
                ["apt-get", *options, "download", "docker-compose"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            packages = list(Path(folder).glob("docker-compose_*.deb"))
            if fetched.returncode != 0 or not packages:
                raise NoEngineError(
                    f"apt-get download docker-compose failed:\n{fetched.stdout}{fetched.stderr}"
                )
            unpacked = Path(folder) / "unpacked"
            subprocess.run(["dpkg-deb", "-x", str(packages[0]), str(unpacked)], check=True)
            plugin.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(unpacked / "usr/libexec/docker/cli-plugins/docker-compose", plugin)
        return config


def slim_down(root: Path) -> None:
    """Make a Debian root filesystem as slim as Debian's -slim images: remove what their dpkg
    filters leave out, and keep the filters, so that packages installed later stay slim."""
    filters = [f"path-exclude {pattern}" for pattern in SLIM_EXCLUDES]
    filters += [f"path-include {pattern}" for pattern in SLIM_INCLUDES]
    (root / "etc/dpkg/dpkg.cfg.d/slim").write_text("\n".join(filters) + "\n")
    kept = {path for pattern in SLIM_INCLUDES for path in root.glob(pattern.lstrip("/"))}
    for pattern in SLIM_EXCLUDES:
        folder = root / pattern.lstrip("/").removesuffix("/*")
        # Deepest first, so that a folder is empty by the time it is reached.
        for path in sorted(folder.rglob("*"), reverse=True):
            if path in kept:
                continue
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink()


def _answers(env: dict[str, str]) -> bool:
    """Whether a Docker engine answers the client with this environment."""
    try:
        return run(["docker", "info"], env=env, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@contextmanager
def _cache_lock(cache: Path) -> Iterator[Path]:
    """The cached engine state, or a throwaway one while another run holds the cache."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "engine.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with tempfile.TemporaryDirectory(prefix="engine-") as folder:
                yield Path(folder)
            return
        yield cache / "engine"


@contextmanager
def container_engine() -> Iterator[Engine]:
    """A Docker engine for the session: the one that answers, or a private dockerd."""
    if shutil.which("docker") and _answers(dict(os.environ)):
        yield Engine(env=dict(os.environ), cache=_ensure(cache_root()), private=False)
        return
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        apt_install("docker.io")
    if os.geteuid() != 0:
        raise NoEngineError(
            "no Docker engine answers and a private dockerd needs root: start an engine "
            "and point DOCKER_HOST at it"
        )
    cache = _ensure(cache_root())
    with _cache_lock(cache) as state, tempfile.TemporaryDirectory(prefix="dockerd-") as run_dir:
        data = state / "data"
        data.mkdir(parents=True, exist_ok=True)
        socket = Path(run_dir) / "docker.sock"
        log_path = Path(run_dir) / "dockerd.log"
        command = [
            "dockerd",
            f"--data-root={data}",
            f"--exec-root={run_dir}/exec",
            f"--pidfile={run_dir}/dockerd.pid",
            f"--host=unix://{socket}",
            # No bridge and no iptables rules: the host's network is left as it is.
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
        ]
        env = {**os.environ, "DOCKER_HOST": f"unix://{socket}"}
        env.pop("DOCKER_CONTEXT", None)
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        engine = Engine(env=env, cache=cache, private=True)
        try:
            _wait_for_daemon(daemon, env, log_path)
            # Leftovers of a run that was killed before it could clean up.
            for kind in ("container", "volume", "network"):
                engine.docker(kind, "prune", "--force")
            yield engine
        finally:
            # Containers still running would outlive the daemon (their containerd shims stay):
            # each is removed, by its id, before the daemon is stopped.
            if daemon.poll() is None:
                leftovers = engine.docker("ps", "--all", "--quiet", timeout=60).stdout.split()
                if leftovers:
                    engine.docker("rm", "--force", *leftovers, timeout=120)
            daemon.terminate()
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            unmount_below(Path(run_dir))


def unmount_below(folder: Path) -> None:
    """Unmount what dockerd left mounted in its folder (the network namespace), deepest first."""
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted(mounted, key=len, reverse=True):
        if Path(point).is_relative_to(folder):
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _ensure(folder: Path) -> Path:
    """The folder, created if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait_for_daemon(daemon: subprocess.Popen[bytes], env: dict[str, str], log: Path) -> None:
    """Wait until the private dockerd answers, or say why it did not start."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise NoEngineError(
                f"dockerd exited {daemon.returncode}:\n{last_lines(log.read_text())}"
            )
        if _answers(env):
            return
        time.sleep(0.25)
    raise NoEngineError(f"dockerd did not answer within 60 s:\n{last_lines(log.read_text())}")


# -- talking to what runs in the containers ---------------------------------------------


def http(
    method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """One HTTP request; the status and the decoded JSON body (or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http only
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - as above
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        payload = error.read()
        status = error.code
    return status, json.loads(payload) if payload else None


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until check() is true; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
