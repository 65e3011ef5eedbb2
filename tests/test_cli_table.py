"""The command table (node/cli/table.py): each command's ``module:function`` is the
handler its module declares, ``mirror --help`` loads no command module and nothing
heavy, and a command loads its own module only."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from typing import Any

import pytest

from node.cli.main import parse
from node.cli.table import BY_NAME, COMMANDS, DEFAULT
from tests.helpers import REPO

COMMAND_MODULES = sorted({c.module for c in COMMANDS})


def declared(module: str) -> dict[str, tuple[Any, str]]:
    """name -> (handler, help) as *module*'s add_commands declares them."""
    found: dict[str, tuple[Any, str]] = {}

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        found[name] = (handler, help_text)
        return argparse.ArgumentParser()

    importlib.import_module(module).add_commands(add)
    return found


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_the_table_and_the_modules_agree(module: str) -> None:
    in_table = {c.name: c for c in COMMANDS if c.module == module}
    in_module = declared(module)
    assert set(in_module) == set(in_table)
    for name, (handler, help_text) in in_module.items():
        command = in_table[name]
        target = getattr(importlib.import_module(module), command.function)
        assert handler is target, f"{name}: the table says {command.target}"
        assert help_text == command.help, name


def test_names_are_unique_and_the_default_is_a_command() -> None:
    assert len(BY_NAME) == len(COMMANDS)
    assert DEFAULT in BY_NAME


def _loaded_after(code: str) -> set[str]:
    script = ("import sys, json\n" + code +
              "\nprint(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


HEAVY = {"trio", "pycrdt", "crdt", "node.app", "node.core", "prompt_toolkit", "litellm",
         "zeroconf", "httpx", "nacl"}


def test_help_loads_no_command_module_and_nothing_heavy() -> None:
    loaded = _loaded_after(
        "from node.cli.main import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass")
    assert not loaded & set(COMMAND_MODULES)
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_a_command_parses_with_its_own_module_only() -> None:
    loaded = _loaded_after("from node.cli.main import parse\nparse(['reflect', 'hello'])")
    assert loaded & set(COMMAND_MODULES) == {"node.cli.journal"}
    assert "node.repl" not in loaded and "node.sync" not in loaded


def test_no_command_is_the_prompt_with_its_defaults() -> None:
    args = parse(["--home", "/nowhere"])
    assert args.command.name == DEFAULT and args.home == "/nowhere"
    assert args.handler.__name__ == "cmd_repl"


def test_a_nested_action_sets_its_own_handler() -> None:
    args = parse(["commons", "read", "--offline"])
    assert args.command.name == "commons" and args.handler.__name__ == "cmd_read"
    assert parse(["update", "keys", "list"]).handler.__name__ == "cmd_keys_list"


def test_a_wrong_top_level_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli.main import main

    for argv in (["--home"], ["--bogus"], ["--home", "/x", "nosuchcommand"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("mirror: "), err
