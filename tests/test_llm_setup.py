"""The model engines after the README's install: litellm comes with Mirror, a
missing litellm is named as such, and Ollama models can be named as Ollama
users name them.

A missing litellm is simulated in a child process whose path finder does not
find it (``importlib.util.find_spec`` gives None, ``import`` raises
ModuleNotFoundError), which is what an install without it looks like to Mirror.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio

from node.config import Config
from node.llm.client import LLMTarget, describe_failure, litellm_installed
from tests.helpers import REPO, mirror_env
from tests.helpers_llm import DEFAULT_REPLY, fake_llm
from tests.test_llm_engine import DEADLINE_S, TEXT, _local_core

HIDE_LITELLM = r"""
import importlib.machinery, sys

class PathFinderWithoutLitellm(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] == "litellm":
            return None  # as when it is not installed anywhere on sys.path
        return super().find_spec(name, path, target)

sys.meta_path[:] = [PathFinderWithoutLitellm if f is importlib.machinery.PathFinder else f
                    for f in sys.meta_path]
from node.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

def mirror_without_litellm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in mirror_env(home).items() if not k.startswith(("LITELLM_", "OLLAMA_"))}
    return subprocess.run([sys.executable, "-c", HIDE_LITELLM, *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120, check=False, input="")


def test_litellm_is_a_regular_dependency_so_the_readme_install_brings_it() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert "litellm" in names
    assert litellm_installed()


def test_without_litellm_the_engine_commands_refuse_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for choice in ("local", "remote"):
        done = mirror_without_litellm(home, "engine", choice, "--model", "llama3.2")
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "litellm, which is not installed" in done.stderr
        assert f"{sys.executable} -m pip install" in done.stderr
    assert json.loads((home / "config.json").read_text())["engine_mode"] == "offline"
    done = mirror_without_litellm(home, "engine", "offline")
    assert done.returncode == 0 and done.stdout.startswith("engine: offline")


def test_without_litellm_a_configured_model_says_so_not_a_wrong_diagnosis(
    tmp_path: Path,
) -> None:
    # The config was set while litellm was there; then it went away.
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps(
        {"engine_mode": "local_llm", "engine_model": "llama3.2",
         "engine_api_base": "http://127.0.0.1:9"}))
    done = mirror_without_litellm(home, "reflect", "--json", TEXT)
    assert done.returncode == 0, done.stderr
    assert "litellm is not installed" in done.stderr
    assert "does not know this model" not in done.stderr
    assert done.stderr.count("\n") == 1
    mirrorback = json.loads(done.stdout)["mirrorback"]
    assert mirrorback and "litellm" not in mirrorback and "did not answer" not in mirrorback


def test_failure_lines_name_what_is_really_wrong() -> None:
    target = LLMTarget("ollama_chat/llama3.2", api_base="http://127.0.0.1:11434")
    missing = describe_failure(target, ModuleNotFoundError("No module named 'litellm'"))
    assert "litellm is not installed" in missing and "pip install" in missing
    assert "does not know" not in describe_failure(target, FileNotFoundError("x"))

    class BadRequestError(Exception):
        pass

    no_provider = describe_failure(target, BadRequestError(
        "litellm.BadRequestError: LLM Provider NOT provided. Pass in the LLM provider you "
        "are trying to call. You passed model=llama3.2"))
    assert "ollama_chat/NAME" in no_provider

    class NotFoundError(Exception):
        pass

    assert "does not know this model" in describe_failure(target, NotFoundError("model x"))


@pytest.mark.parametrize(("given", "used"), [
    ("llama3.2", "ollama_chat/llama3.2"),
    ("llama3.2:1b", "ollama_chat/llama3.2:1b"),
    ("ollama/llama3.2", "ollama/llama3.2"),
    ("openai/qwen2", "openai/qwen2"),
    ("", "ollama_chat/llama3.2"),
])
def test_a_local_model_without_a_provider_is_ollamas(given: str, used: str) -> None:
    assert Config(engine_mode="local_llm", engine_model=given).effective_model == used


def test_a_remote_model_name_is_left_to_the_provider() -> None:
    config = Config(mirror_mode="hybrid", engine_mode="remote_llm", engine_model="gpt-4o-mini")
    assert config.effective_model == "gpt-4o-mini"


async def test_a_model_named_like_ollama_users_name_it_reaches_ollama(tmp_path: Path) -> None:
    with fake_llm() as fake:
        async for core in _local_core(tmp_path, fake, model="tiny"):
            shown: list[str] = []
            with trio.fail_after(DEADLINE_S):
                r = await core.reflect(TEXT)
                text = await core.mirror(r, shown.append)
    assert shown == [] and text == DEFAULT_REPLY
    chat = fake.chats()[0]
    assert chat.path == "/api/chat" and chat.body["model"] == "tiny"


def test_engine_local_shows_the_provider_it_will_use(tmp_path: Path) -> None:
    env = mirror_env(tmp_path / "home")
    done = subprocess.run([sys.executable, "-m", "node.cli", "engine", "local", "--model",
                           "llama3.2"], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120, check=False, input="")
    assert done.returncode == 0, done.stderr
    assert "model: ollama_chat/llama3.2" in done.stdout
