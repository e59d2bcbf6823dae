"""The wheel, built and installed the way the Dockerfile does it, and run as a non-root user.

Used by tests/test_packaging.py (what the wheel holds) and tests/test_image.py (the image's
steps without a Docker engine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.helpers.databases import unix_socket
from tests.helpers.deploy import ROOT, dockerfile_stages, require

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def build_wheel(out: Path) -> Path:
    """The wheel, built as the image's builder stage builds it: ``pip wheel --no-deps`` in a
    directory holding only what that stage COPYs (a clean tree: a stale ``build/`` of the
    working tree can leak old files into a wheel)."""
    (builder, *_) = dockerfile_stages(ROOT / "Dockerfile")
    source = out / "src"
    source.mkdir()
    for args in builder.all("COPY"):
        *paths, _destination = args.split()
        for name in paths:
            if (ROOT / name).is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(ROOT / name, source / name, ignore=ignore)
            else:
                shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [*PIP, "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("thulium_etl-*.whl")
    return built


def install_into_target(wheel: Path, target: Path) -> None:
    """The wheel alone (no dependencies) unpacked into ``target``, for PYTHONPATH."""
    subprocess.run(
        [*PIP, "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )


def install_into_venv(wheel: Path, venv: Path, python: str) -> None:
    """A fresh virtual environment made by ``python`` with the wheel and its dependencies, as
    the image's final stage installs it (``pip install THE.whl``)."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    done = subprocess.run(
        [*PIP, "--python", str(venv / "bin" / "python"), "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def as_user(uid: int, gid: int) -> list[str]:
    """The command prefix that runs a program as ``uid:gid`` with no other groups; none when
    the tests already run as a user other than root."""
    if os.geteuid() != 0:
        return []
    return [require("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def python_for(prefix: list[str]) -> str:
    """A Python of this minor version that the user of ``prefix`` may run: this one, unless
    it lives where only root can enter (a pyenv under /root), else the system's."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        str(Path(sys.base_prefix) / "bin" / version),
        *(str(Path(d) / version) for d in ("/usr/local/bin", "/usr/bin")),
    ]
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        probe = subprocess.run([*prefix, candidate, "-c", "import venv"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    pytest.fail(
        f"no {version} that a non-root user may run (tried {', '.join(candidates)}): "
        f"apt-get install {version}-venv",
        pytrace=False,
    )


@contextlib.contextmanager
def over_tcp(url: URL) -> Iterator[URL]:
    """``url`` over TCP on loopback. A server on a Unix socket (the embedded Postgres keeps
    its socket in a directory only its owner may enter) gets a relay on 127.0.0.1, so a
    process of another user reaches it the way a container reaches its database."""
    path = unix_socket(url)
    if path is None:
        yield url
        return
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def relay(client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX) as upstream:
            upstream.connect(path)
            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join()

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener closed: done
            while True:
                client, _ = listener.accept()
                threading.Thread(target=relay, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        tcp = url.difference_update_query(["host"])
        yield tcp.set(host="127.0.0.1", port=listener.getsockname()[1])
    finally:
        listener.close()


@contextlib.contextmanager
def readable_directory(*, prefix: str) -> Iterator[Path]:
    """A temporary directory every user may enter and read (only its owner writes), removed
    afterwards. pytest's tmp_path lies under a directory only its owner may enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_secret(directory: Path, name: str, value: str, uid: int, gid: int) -> Path:
    """``value`` in a file only ``uid`` may read (mode 0400), as a mounted secret is."""
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o400)
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
    return path
