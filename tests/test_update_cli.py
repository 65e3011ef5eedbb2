"""``mirror update`` and ``mirror-release`` from the outside: keys, check, verify, install.

Releases are made the way a maintainer makes them (``mirror-release keygen`` and
``sign``) over a real, installable wheel built here. Manifests are served from
files and from an HTTP server on 127.0.0.1 port 0. In this process pip is
replaced by a recorder (so nothing can be installed into the test's own
environment); the real ``pip install`` runs only in a throwaway virtualenv,
through the real program, in the tests at the end. A socket guard fails any
test that would reach beyond loopback.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import subprocess
import sys
import sysconfig
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirror_tools import release as release_tool
from node.cli.main import main as mirror_main
from node.updates import release as release_module
from node.updates.source import check_reachable
from tests.helpers import REPO, mirror_env

PROBE = "mirror_probe"


# --------------------------------------------------------------------------- fixtures


def build_wheel(folder: Path, version: str, *, name: str = PROBE, value: str = "installed") -> Path:
    """A real, minimal, pure-Python wheel that pip can install."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VALUE = {value!r}\n".encode(),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        .encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: mirror-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return wheel


@dataclass
class Fork:
    folder: Path
    key_file: Path
    public: str

    def release(self, version: str, notes: str = "better reflections", **wheel: Any) -> Path:
        """Build and sign a release; returns the signed manifest's path."""
        folder = self.folder / version
        folder.mkdir(exist_ok=True)
        built = build_wheel(folder, version, **wheel)
        assert release_tool.main(["sign", "--key", str(self.key_file), "--wheel", str(built),
                                  "--notes", notes, "--date", "2026-05-01T12:00:00Z"]) == 0
        return folder / "release-manifest.json"


def make_fork(folder: Path, name: str) -> Fork:
    folder.mkdir(parents=True)
    key_file = folder / "release.key"
    assert release_tool.main(["keygen", "--fork", name, "--out", str(key_file)]) == 0
    public = (folder / "release.key.pub").read_text().split()[0]
    return Fork(folder, key_file, public)


@pytest.fixture
def fork(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Fork:
    made = make_fork(tmp_path / "upstream", "upstream")
    capsys.readouterr()
    return made


@pytest.fixture(autouse=True)
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], bytes]]:
    """pip, replaced in this process: records each command and the wheel's bytes then."""
    calls: list[tuple[list[str], bytes]] = []

    async def recorder(argv: Sequence[str]) -> None:
        calls.append((list(argv), Path(argv[-1]).read_bytes()))  # noqa: ASYNC240 (tiny)

    monkeypatch.setattr(release_module, "run_pip", recorder)
    return calls


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail, without connecting, anything that would leave this machine."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1", "::1"
        ):
            raise AssertionError(f"a test tried to connect to {address!r}")
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            raise AssertionError(f"a test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class Mirror:
    """The real ``mirror`` entry point, in this process, against one home."""

    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self.capsys = capsys

    def __call__(self, *args: str, status: int = 0) -> str:
        got = mirror_main(["--home", str(self.home), *args])
        out, err = self.capsys.readouterr()
        assert got == status, f"mirror {' '.join(args)} → {got}\n{out}{err}"
        if status:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("mirror: "), err
            return lines[0]
        return out


@pytest.fixture
def mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Mirror:
    return Mirror(tmp_path / "home", capsys)


class Server:
    """A static HTTP server on 127.0.0.1 port 0 with a few special routes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path in server.routes:
                    status, headers, body = server.routes[self.path]
                    self.send_response(status)
                    for name, value in {"Content-Length": str(len(body)), **headers}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.lstrip('/')}"


@pytest.fixture
def server(fork: Fork) -> Iterator[Server]:
    s = Server(fork.folder)
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=10)


def wheel_of(manifest_path: Path) -> Path:
    data = json.loads(manifest_path.read_text())
    return manifest_path.parent / data["manifest"]["wheel"]


# --------------------------------------------------------------------------- keys


def test_keys_add_list_remove(mirror: Mirror, fork: Fork) -> None:
    assert "You trust no release keys" in mirror("update", "keys", "list")
    out = mirror("update", "keys", "add", str(fork.folder / "release.key.pub"))
    assert "'upstream'" in out
    mirror("update", "keys", "add", "ed25519:" + "11" * 32, "--label", "a friend")
    listed = json.loads(mirror("update", "keys", "list", "--json"))
    assert [(k["label"], k["key"]) for k in listed] == [
        ("upstream", fork.public), ("a friend", "ed25519:" + "11" * 32)]
    assert (mirror.home / "trusted-keys.json").stat().st_mode & 0o777 == 0o600
    assert "no longer trusting 'a friend'" in mirror("update", "keys", "remove", "a friend")
    assert mirror("update", "keys").count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ed25519:abcd", "--label", "x"], "is not a key of the form"),
        (["ed25519:" + "11" * 32], "--label NAME"),
        (["/no/such.pub"], "neither a key"),
    ],
)
def test_keys_add_refusals_are_one_line(mirror: Mirror, args: list[str], message: str) -> None:
    assert message in mirror("update", "keys", "add", *args, status=2 if "label" in message
                             or "neither" in message else 1)


def test_keys_remove_unknown(mirror: Mirror) -> None:
    assert "no trusted key" in mirror("update", "keys", "remove", "nobody", status=1)


# --------------------------------------------------------------------------- check and verify


def test_sign_check_verify_round_trip_installs_nothing(
    mirror: Mirror, fork: Fork, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0", notes="line one\nline two")
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    out = mirror("update", "check", str(manifest))
    assert "release 9.1.0 of fork 'upstream', signed by your key 'upstream'" in out
    assert "this release is newer" in out and "  line two" in out
    assert "nothing was installed" in out
    out = mirror("update", "verify", str(wheel_of(manifest)))
    assert out.startswith("verified: mirror_probe-9.1.0-py3-none-any.whl is release 9.1.0")
    data = json.loads(mirror("update", "check", str(manifest), "--json"))
    assert data["version"] == "9.1.0" and data["relation"] == "newer"
    assert data["auto_install"] is False
    assert "mirror-probe 9.1.0 of fork 'upstream'" in mirror("update")
    assert pip_calls == []
    assert not list((mirror.home / "updates").glob("staging-*")), "staging left behind"


def test_check_from_an_unknown_key_is_refused(mirror: Mirror, fork: Fork) -> None:
    manifest = fork.release("9.1.0")
    line = mirror("update", "check", str(manifest), status=1)
    assert "which you do not trust" in line and fork.public in line
    assert not (mirror.home / "updates" / "release.json").exists()


def test_a_tampered_manifest_is_a_bad_signature(mirror: Mirror, fork: Fork) -> None:
    manifest = fork.release("9.1.0")
    data = json.loads(manifest.read_text())
    data["manifest"]["notes"] = "totally harmless"
    manifest.write_text(json.dumps(data))
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    assert "bad signature" in mirror("update", "check", str(manifest), status=1)


def test_a_removed_key_no_longer_verifies_what_was_checked(
    mirror: Mirror, fork: Fork, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    mirror("update", "check", str(manifest))
    mirror("update", "keys", "remove", "upstream")
    assert "which you do not trust" in mirror("update", "verify", str(wheel_of(manifest)),
                                              status=1)
    assert "do not trust" in mirror("update", "install", "--yes", status=1)
    assert "no longer verifies" in mirror("update")
    assert pip_calls == []


def test_a_wheel_that_is_not_the_released_one_is_refused(
    mirror: Mirror, fork: Fork, tmp_path: Path, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    mirror("update", "check", str(manifest))
    other = tmp_path / "other"
    other.mkdir()
    impostor = build_wheel(other, "9.1.0", value="malicious")  # same size, other bytes
    assert "SHA-256" in mirror("update", "verify", str(impostor), status=1)
    assert "SHA-256" in mirror("update", "install", str(impostor), "--yes", status=1)
    renamed = other / "mirror_probe-9.1.1-py3-none-any.whl"
    renamed.write_bytes(wheel_of(manifest).read_bytes())
    assert "is named" in mirror("update", "verify", str(renamed), status=1)
    longer = other / wheel_of(manifest).name
    longer.write_bytes(wheel_of(manifest).read_bytes() + b"\0")
    assert "larger than" in mirror("update", "verify", str(longer), status=1)
    longer.write_bytes(wheel_of(manifest).read_bytes()[:-1])
    assert "bytes, not the" in mirror("update", "verify", str(longer), status=1)
    assert pip_calls == []
    assert not list((mirror.home / "updates").glob("staging-*/*"))


def test_downgrades_are_refused_unless_allowed(
    mirror: Mirror, fork: Fork, pip_calls: list[Any]
) -> None:
    old = fork.release("0.0.1")  # older than any Mirror that runs these tests
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    line = mirror("update", "check", str(old), status=1)
    assert "refusing a downgrade" in line and "--allow-downgrade" in line
    assert "OLDER" in mirror("update", "check", str(old), "--allow-downgrade")
    assert "refusing a downgrade" in mirror("update", "install", "--yes", status=1)
    assert pip_calls == []
    mirror("update", "install", "--yes", "--allow-downgrade")
    assert len(pip_calls) == 1


def test_the_same_version_is_not_reinstalled(mirror: Mirror, fork: Fork) -> None:
    current = release_module.installed_version(release_module.MIRROR_DISTRIBUTION)
    assert current is not None
    same = fork.release(current, name="mirror_reflect")
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    assert "you have this release" in mirror("update", "check", str(same))
    assert "already installed" in mirror("update", "install", "--yes", status=1)


def test_install_without_yes_and_without_a_terminal_asks_for_yes(
    mirror: Mirror, fork: Fork, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    mirror("update", "check", str(manifest))
    assert "pass --yes" in mirror("update", "install", status=2)
    assert pip_calls == []
    out = mirror("update", "install", "--yes")
    assert "installed mirror-probe 9.1.0" in out
    ((argv, staged),) = pip_calls
    assert argv[1:6] == ["-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    assert "--no-index" in argv  # local mode: pip may not reach an index either
    assert staged == wheel_of(manifest).read_bytes()
    assert Path(argv[-1]).name == wheel_of(manifest).name
    assert not Path(argv[-1]).exists(), "the staged copy is removed after installing"


def test_install_without_a_checked_release_says_what_to_do(mirror: Mirror) -> None:
    assert "run mirror update check" in mirror("update", "install", "--yes", status=1)
    assert "where are releases published" in mirror("update", "check", status=2)


def test_other_schemes_are_refused(mirror: Mirror) -> None:
    assert "cannot fetch from ftp://" in mirror("update", "check", "ftp://127.0.0.1/m.json",
                                                status=1)


def test_auto_update_is_off_by_default_and_needs_a_source(mirror: Mirror) -> None:
    assert "auto-update: off" in mirror("update", "auto")
    assert "needs an update_source" in mirror("update", "auto", "on", status=1)


def test_auto_update_installs_only_verified_newer_releases(
    mirror: Mirror, fork: Fork, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    mirror("update", "source", str(manifest))
    assert "auto-update: on" in mirror("update", "auto", "on")
    assert "do not trust" in mirror("update", "check", status=1)  # not followed yet
    assert pip_calls == []
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    wheel = wheel_of(manifest)
    good = wheel.read_bytes()
    wheel.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert "SHA-256" in mirror("update", "check", status=1)
    assert pip_calls == []
    wheel.write_bytes(good)
    out = mirror("update", "check")
    assert "auto-update is on" in out and "installed mirror-probe 9.1.0" in out
    assert len(pip_calls) == 1
    mirror("update", "auto", "off")
    mirror("update", "check")
    assert len(pip_calls) == 1


# --------------------------------------------------------------------------- over HTTP


def test_check_and_install_over_http(
    mirror: Mirror, fork: Fork, server: Server, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    url = server.url("9.1.0/release-manifest.json")
    assert "release 9.1.0" in mirror("update", "check", url)
    assert server.requests == ["/9.1.0/release-manifest.json"], "check fetched more than it needed"
    assert pip_calls == []
    mirror("update", "install", "--yes")
    assert server.requests[-1] == "/9.1.0/" + wheel_of(manifest).name
    assert pip_calls[0][1] == wheel_of(manifest).read_bytes()


def test_a_commons_document_url_is_just_an_http_source(
    mirror: Mirror, fork: Fork, server: Server, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    server.routes["/api/documents/rel-9"] = (
        200, {"Content-Type": "application/json"}, manifest.read_bytes())
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    assert "release 9.1.0" in mirror("update", "check", server.url("api/documents/rel-9"))
    mirror("update", "install", "--yes", server.url("9.1.0/" + wheel_of(manifest).name))
    assert len(pip_calls) == 1


def test_http_failures_are_one_line(mirror: Mirror, fork: Fork, server: Server) -> None:
    server.routes["/big.json"] = (200, {}, b" " * (70 * 1024))
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    assert "HTTP 404" in mirror("update", "check", server.url("missing.json"), status=1)
    assert "larger than" in mirror("update", "check", server.url("big.json"), status=1)
    dead = server.url("x.json").replace(str(server.httpd.server_address[1]), "9")
    assert "cannot fetch" in mirror("update", "check", dead, status=1)


def test_an_oversized_download_is_cut_off(
    mirror: Mirror, fork: Fork, server: Server, pip_calls: list[Any]
) -> None:
    manifest = fork.release("9.1.0")
    wheel = wheel_of(manifest)
    server.routes["/big/" + wheel.name] = (200, {}, wheel.read_bytes() * 3)
    mirror("update", "keys", "add", fork.public, "--label", "upstream")
    mirror("update", "check", str(manifest))
    assert "larger than" in mirror("update", "install", "--yes", server.url("big/" + wheel.name),
                                   status=1)
    assert pip_calls == []


def test_local_mode_never_follows_a_redirect_off_the_lan(
    mirror: Mirror, fork: Fork, server: Server
) -> None:
    # Refused from the URL alone; the socket guard fails the test if anything is resolved.
    server.routes["/away.json"] = (302, {"Location": "http://releases.example.org/m.json"}, b"")
    assert "beyond this machine and the LAN" in mirror("update", "check",
                                                       server.url("away.json"), status=1)


@pytest.mark.parametrize(
    ("url", "mode", "allowed"),
    [
        ("https://releases.example.org/m.json", "local", False),
        ("https://mirror.example.net:8443/m.json", "local", False),
        ("http://127.0.0.1:8000/m.json", "local", True),
        ("http://192.168.1.20/m.json", "local", True),
        ("http://nas.local/m.json", "local", True),
        ("https://releases.example.org/m.json", "hybrid", True),
    ],
)
def test_reachability_by_mode(url: str, mode: str, allowed: bool) -> None:
    if allowed:
        check_reachable(url, mode)
    else:
        with pytest.raises(release_module.UpdateError, match="local mode"):
            check_reachable(url, mode)


def test_a_remote_source_in_local_mode_is_refused_without_connecting(mirror: Mirror) -> None:
    line = mirror("update", "check", "https://releases.example.org/release-manifest.json", status=1)
    assert "mirror mode hybrid" in line


# --------------------------------------------------------------------------- mirror-release


def test_release_tool_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fork = make_fork(tmp_path / "f", "f")
    assert release_tool.main(["keygen", "--fork", "f", "--out", str(fork.key_file)]) == 2
    assert "not overwriting" in capsys.readouterr().err
    fork.key_file.chmod(0o644)
    wheel = build_wheel(tmp_path, "1.0")
    assert release_tool.main(["sign", "--key", str(fork.key_file), "--wheel", str(wheel),
                              "--notes", ""]) == 1
    assert "others may read this signing key" in capsys.readouterr().err
    fork.key_file.chmod(0o600)
    assert release_tool.main(["sign", "--key", str(fork.key_file), "--wheel", str(wheel),
                              "--notes", "", "--version", "1.1"]) == 1
    assert "is not version 1.1" in capsys.readouterr().err
    assert release_tool.main(["sign", "--key", str(fork.key_file), "--wheel",
                              str(tmp_path / "nope.whl"), "--notes", ""]) == 2
    signed = tmp_path / "release-manifest.json"
    assert release_tool.main(["sign", "--key", str(fork.key_file), "--wheel", str(wheel),
                              "--notes", "n"]) == 0
    assert release_tool.main(["show", str(signed)]) == 0
    assert "signature matches" in capsys.readouterr().out
    data = json.loads(signed.read_text())
    data["manifest"]["notes"] = "m"
    signed.write_text(json.dumps(data))
    assert release_tool.main(["show", str(signed)]) == 1
    assert "BAD SIGNATURE" in capsys.readouterr().out


# --------------------------------------------------------------------------- real pip


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A throwaway virtualenv that sees this one's packages (pip, trio, …) but installs
    into itself; returns its python."""
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)],
                   check=True, timeout=120, capture_output=True)
    python = target / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()
    outer = sysconfig.get_paths()["purelib"]
    Path(site, "_outer_packages.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
    return python


def run_in(python: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "node.cli", *args], capture_output=True, text=True,
                          env=mirror_env(home), cwd=REPO, timeout=300, check=False, input="")


def probe_value(python: Path) -> str | None:
    out = subprocess.run([str(python), "-c", f"import {PROBE}; print({PROBE}.VALUE)"],
                         capture_output=True, text=True, timeout=60, check=False, cwd="/")
    return out.stdout.strip() if out.returncode == 0 else None


def test_the_real_program_checks_without_installing_then_installs_with_pip(
    venv: Path, fork: Fork, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    manifest = fork.release("9.1.0")
    assert run_in(venv, home, "update", "keys", "add", fork.public, "--label", "up").returncode == 0
    checked = run_in(venv, home, "update", "check", str(manifest))
    assert checked.returncode == 0, checked.stderr
    assert probe_value(venv) is None, "check installed something"
    asked = run_in(venv, home, "update", "install")
    assert asked.returncode == 2
    assert asked.stderr == "mirror: pass --yes to install without asking\n"
    assert probe_value(venv) is None
    done = run_in(venv, home, "update", "install", "--yes")
    assert done.returncode == 0, done.stderr
    assert probe_value(venv) == "installed"
    # Now that 9.1.0 of the probe is installed, its 9.0.0 is a downgrade.
    older = fork.release("9.0.0", value="older")
    refused = run_in(venv, home, "update", "install", "--yes", "--manifest", str(older))
    assert refused.returncode == 1 and "refusing a downgrade" in refused.stderr
    assert probe_value(venv) == "installed"


def test_pip_failing_is_one_line(venv: Path, fork: Fork, tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = fork.folder / "broken"
    folder.mkdir()
    wheel = folder / "mirror_probe-9.2.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip file at all")
    assert release_tool.main(["sign", "--key", str(fork.key_file), "--wheel", str(wheel),
                              "--notes", "broken"]) == 0
    run_in(venv, home, "update", "keys", "add", fork.public, "--label", "up")
    result = run_in(venv, home, "update", "install", "--yes", "--manifest",
                    str(folder / "release-manifest.json"))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirror: pip could not install"), lines
