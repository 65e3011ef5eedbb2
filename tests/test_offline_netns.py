"""T10, sovereignty: Layer 1 passes its tests with no network but loopback, and
``local`` mode with the offline engine touches no network at all.

``test_the_node_layer_passes_in_a_namespace_with_only_loopback`` creates a network
namespace whose only interface is ``lo`` (no route anywhere else), and runs the
node-layer tests inside it with ``ip netns exec`` as a child pytest, ``-m "not
slow"`` as CI does: every test file but this one and those that exercise the
servers (they import, or start with ``python -m``, the ``relay`` or
``commons_server`` packages; servers live on the network by nature), minus the
tests that create network namespaces of their own (found by their use of
``tests.netns_helper``; they already run isolated). Discovery binds to
127.0.0.1, which exists there. ``test_the_whole_suite_passes_in_a_namespace_with_only_loopback``
(marked slow) reruns every file the same way. The namespace is deleted
afterwards, also on failure or timeout. Where ``ip netns`` cannot be used (not
root, no ``ip``) the tests are skipped and say why. ``pytest -m "not netns"``
leaves them out.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.netns_helper import netns_unavailable

INNER_ENV = "MIRROR_OFFLINE_INNER"  # set in the child run: never recurse
INNER_TIMEOUT_S = 600  # the whole suite alone ~3 min; the node layer ~2 min
IP_TIMEOUT_S = 10
PREFIX = "mirror-offline-"
NAMESPACE_HELPERS = {"netns_unavailable", "veth_namespace_pair"}
SERVER_PACKAGES = {"relay", "commons_server", "serving"}


def imported_roots(tree: ast.AST) -> set[str]:
    """Top-level packages a module imports (anywhere in it) or starts as ``python -m``."""
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
            if node.module == "tests":  # from tests import commons_helpers
                roots.update(f"tests.{alias.name}" for alias in node.names)
            elif node.module.startswith("tests."):
                roots.add(node.module)
        elif isinstance(node, ast.List | ast.Tuple):
            items = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, module in itertools.pairwise(items):
                if flag == "-m" and isinstance(module, str):
                    roots.add(module.split(".")[0])
    return roots


def exercises_servers(path: Path, tests_dir: Path) -> bool:
    """Whether the test module at *path* imports or starts a server package, itself
    or through a helper module of the tests."""
    seen: set[Path] = set()
    pending = [path]
    while pending:
        current = pending.pop()
        if current in seen or not current.exists():
            continue
        seen.add(current)
        roots = imported_roots(ast.parse(current.read_text(encoding="utf-8")))
        if roots & SERVER_PACKAGES:
            return True
        pending += [tests_dir / f"{r.removeprefix('tests.')}.py"
                    for r in roots if r.startswith("tests.")]
    return False


def suite_selection(
    tests_dir: Path = REPO / "tests", *, node_layer_only: bool = False
) -> tuple[list[str], list[str]]:
    """(test files, node ids to deselect) for the offline run, relative to the repo."""
    files, deselect = [], []
    for path in sorted(tests_dir.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        if node_layer_only and exercises_servers(path, tests_dir):
            continue
        rel = str(path.relative_to(REPO))
        files.append(rel)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                if names & NAMESPACE_HELPERS:
                    deselect.append(f"{rel}::{node.name}")
    return files, deselect


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def remove_stale_namespaces() -> None:
    """Delete namespaces of runs that were killed before they could clean up."""
    for line in _ip("netns", "list").stdout.splitlines():
        match = re.match(rf"({re.escape(PREFIX)}(\d+)-[0-9a-f]+)\b", line)
        if match:
            try:
                os.kill(int(match[2]), 0)
            except ProcessLookupError:
                _ip("netns", "del", match[1])


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S,
                          check=False)


def test_the_selection_is_the_suite_minus_namespace_tests() -> None:
    files, deselect = suite_selection()
    assert "tests/test_update_cli.py" in files and "tests/test_store.py" in files
    assert "tests/test_offline_netns.py" not in files
    assert "tests/test_discovery.py" in files  # its loopback tests run offline too
    assert "tests/test_relay_server.py" in files and "tests/test_blind_e2e.py" in files
    assert "tests/test_discovery.py::test_two_namespaces_find_each_other_over_a_veth_pair" in (
        deselect
    )
    assert all("::test_" in d for d in deselect)


def test_the_node_layer_selection_leaves_out_exactly_the_server_tests() -> None:
    everything, _ = suite_selection()
    node_layer, deselect = suite_selection(node_layer_only=True)
    left_out = set(everything) - set(node_layer)
    # Layer 1's own tests stay: the CLI, the store, the engines, LAN sync and discovery.
    for kept in ("tests/test_cli.py", "tests/test_store.py", "tests/test_llm_engine.py",
                 "tests/test_sync_e2e.py", "tests/test_discovery.py", "tests/test_repl.py"):
        assert kept in node_layer
    # Servers imported directly, through a test helper, or started as `python -m`.
    for server in ("tests/test_relay_server.py", "tests/test_commons.py",
                   "tests/test_relay_e2e.py", "tests/test_blind_e2e.py"):
        assert server in left_out
    assert all(d.split("::")[0] in node_layer for d in deselect)


def test_a_server_is_recognised_however_a_test_reaches_it(tmp_path: Path) -> None:
    (tmp_path / "helper_srv.py").write_text("from commons_server.app import CommonsApp\n")
    cases = {
        "test_direct.py": "import relay.server\n",
        "test_inside.py": "def test_x():\n    from relay import RelayApp\n",
        "test_helper.py": "from tests.helper_srv import x\n",
        "test_helper_module.py": "from tests import helper_srv\n",
        "test_process.py": "ARGV = [sys.executable, '-m', 'commons_server.blind']\n",
        "test_plain.py": "import trio\nfrom node.cli import main\nARGV = ['-m', 'node']\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert {name for name in cases if exercises_servers(tmp_path / name, tmp_path)} == (
        set(cases) - {"test_plain.py"})


@pytest.mark.netns
def test_the_node_layer_passes_in_a_namespace_with_only_loopback(tmp_path: Path) -> None:
    run_offline(tmp_path, node_layer_only=True)


@pytest.mark.netns
@pytest.mark.slow
def test_the_whole_suite_passes_in_a_namespace_with_only_loopback(tmp_path: Path) -> None:
    run_offline(tmp_path, node_layer_only=False)


def run_offline(tmp_path: Path, *, node_layer_only: bool) -> None:
    if os.environ.get(INNER_ENV):
        pytest.skip("already inside the offline run")
    reason = netns_unavailable()
    if reason:
        print(f"offline suite skipped: {reason}")
        pytest.skip(reason)
    remove_stale_namespaces()
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    created = _ip("netns", "add", name)
    assert created.returncode == 0, created.stderr
    try:
        assert _ip("-n", name, "link", "set", "lo", "up").returncode == 0
        links = _ip("-n", name, "-o", "link", "show").stdout.splitlines()
        assert [line.split(":")[1].strip() for line in links] == ["lo"], links
        for family in ("-4", "-6"):
            routes = _ip("-n", name, family, "route", "show", "table", "all").stdout.splitlines()
            assert all(" dev lo" in r for r in routes), f"a route off loopback: {routes}"

        files, deselect = suite_selection(node_layer_only=node_layer_only)
        argv = [
            "ip", "netns", "exec", name, sys.executable, "-m", "pytest", *files,
            "-m", "not slow", "-p", "no:cacheprovider", "-q", "--no-header",
            "--basetemp", str(tmp_path / "inner"), "-o", "faulthandler_timeout=120",
            *(f"--deselect={d}" for d in deselect),
        ]
        # Unbuffered, with faulthandler: if the run hangs, SIGABRT prints every thread.
        env = {**os.environ, INNER_ENV: "1", "PYTHONPATH": str(REPO),
               "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        for proxy in ("http_proxy", "https_proxy", "all_proxy"):  # nothing to reach anyway
            env.pop(proxy, None)
            env.pop(proxy.upper(), None)
        child = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
        try:
            output, _ = child.communicate(timeout=INNER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)  # `ip netns exec` became python: dump threads
            try:
                output, _ = child.communicate(timeout=IP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                output, _ = child.communicate()
            os.killpg(child.pid, signal.SIGKILL) if _alive(child.pid) else None
            finished = "passed" in output.strip().splitlines()[-1:][0] if output.strip() else False
            what = ("the suite finished but its process did not exit" if finished
                    else "the offline suite did not finish")
            pytest.fail(f"{what} within {INNER_TIMEOUT_S} s:\n{output[-8000:]}")
    finally:
        _ip("netns", "del", name)
    summary = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    what = "node-layer tests" if node_layer_only else "suite"
    print(f"offline {what} in namespace {name}: {summary}")
    assert child.returncode == 0, f"the suite failed without network:\n{output[-6000:]}"
    assert " passed" in summary
    assert name not in _ip("netns", "list").stdout


AUDIT_SCRIPT = r"""
import json, socket, sys

seen = []
INET = (socket.AF_INET, socket.AF_INET6)

def hook(event, args):
    if event == "socket.__new__" and args[1] in INET:
        seen.append([event, int(args[1])])
    elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
        if args[0].family in INET:
            seen.append([event, repr(args[1])])
    elif event in ("socket.getaddrinfo", "socket.gethostbyname"):
        seen.append([event, repr(args[0])])

sys.addaudithook(hook)
from node.cli.main import main

home, report = sys.argv[1], sys.argv[2]
statuses = []
for argv in (
    ["init"],
    ["reflect", "Money is tight and I keep checking my bank account."],
    ["reflect", "My boss moved the deadline again and I feel anxious."],
    ["reflect", "--private", "I keep checking my account when I feel anxious."],
    ["list"], ["status"],
    ["patterns"], ["tensions"], ["graph"], ["evolve"], ["related"],
    ["update"], ["update", "keys", "list"],
):
    statuses.append([argv[0], main(["--home", home, *argv])])
with open(report, "w") as fh:
    json.dump({"seen": seen, "statuses": statuses}, fh)
"""


def test_local_mode_cli_cycle_opens_no_socket(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MIRROR_", "LITELLM_", "OLLAMA_"))}
    env["PYTHONPATH"] = str(REPO)
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", AUDIT_SCRIPT, str(tmp_path / "home"), str(report)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=180, check=False, input="",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert all(status == 0 for _, status in data["statuses"]), (data["statuses"], result.stderr)
    config = json.loads((tmp_path / "home" / "config.json").read_text())
    assert config["mirror_mode"] == "local" and config["engine_mode"] == "offline"
    assert data["seen"] == [], f"local mode touched the network: {data['seen']}"
