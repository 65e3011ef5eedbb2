"""Sovereignty: an audit hook on socket connects records a whole reflect cycle.

In ``local`` mode with ``local_llm`` on loopback, and in ``hybrid`` mode with
``remote_llm`` (the seed's hybrid config, the person's own key), the only address
connected to is the configured model server; with ``offline``, there is none. Each check
runs in a fresh subprocess so the audit hook (which cannot be removed) never
leaks into other tests; the fake model server runs inside that subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = r"""
import json, socket, sys
from pathlib import Path
seen = []
def hook(event, args):
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            seen.append(["connect", str(address[0]), int(address[1])])
    elif event == "socket.getaddrinfo":
        seen.append(["getaddrinfo", str(args[0]), args[1]])
sys.addaudithook(hook)

import trio
from node.config import Config
from node.core import open_core
from node.home import Home
from tests.helpers_llm import fake_llm

ENGINE = sys.argv[1]
home = Home(Path(sys.argv[2])); home.ensure()

async def cycle(base):
    if ENGINE == "local_llm":
        home.save_config(Config(engine_mode="local_llm", engine_model="ollama_chat/tiny",
                                engine_api_base=base, engine_timeout_s=10.0,
                                engine_extraction="llm"))
    elif ENGINE == "remote_llm":  # the seed's hybrid config, with a model API of our own
        home.save_config(Config(mirror_mode="hybrid", engine_mode="remote_llm",
                                sync_enabled=True, engine_model="openai/tiny",
                                engine_api_base=base + "/v1", engine_timeout_s=10.0,
                                engine_extraction="llm"))
    async with open_core(home) as core:
        for text in ("Money is tight and I keep checking my bank account.",
                     "My boss moved the deadline again and I feel anxious."):
            r = await core.reflect(text)
            await core.mirror(r)
        await core.understanding.patterns(); await core.understanding.tensions()
        await core.understanding.related(r)
        await core.understanding.evolve()
    return core

with fake_llm() as fake:
    seen.clear()
    trio.run(cycle, fake.base)
    print(json.dumps({"port": fake.port, "seen": seen, "requests": len(fake.requests),
                      "litellm": "litellm" in sys.modules}))
"""


def run_cycle(engine: str, home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MIRROR_", "LITELLM_", "OLLAMA_", "HF_"))}
    env["PYTHONPATH"] = str(REPO)
    env["MIRROR_LLM_API_KEY"] = "sk-test-sovereignty"  # remote_llm: the person's own key
    out = subprocess.run([sys.executable, "-c", SCRIPT, engine, str(home)], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    data: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


@pytest.mark.parametrize("engine", ["local_llm", "remote_llm"])
def test_an_llm_engine_connects_only_to_the_configured_model(engine: str, tmp_path: Path) -> None:
    data = run_cycle(engine, tmp_path / "home")
    seen = data["seen"]
    assert isinstance(seen, list) and seen, "the cycle made no connection at all?"
    assert data["requests"], "the model was never asked"
    for kind, host, port in seen:
        assert host in ("127.0.0.1", "localhost") and port == data["port"], (kind, host, port)


@pytest.mark.parametrize("engine", ["offline"])
def test_offline_connects_to_nothing_and_never_imports_litellm(engine: str, tmp_path: Path) -> None:
    data = run_cycle(engine, tmp_path / "home")
    assert data["seen"] == [] and data["requests"] == 0
    assert data["litellm"] is False
