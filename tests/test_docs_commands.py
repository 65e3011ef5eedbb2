"""Every ``mirror`` command shown in the README and docs/ exists, with its options.

Commands are taken from fenced code blocks and inline code. Each one is walked
through the real argument parser: subcommands and nested subcommands must
exist, options must be known to the command they are given to, and values for
arguments with fixed choices must be among them. Other console scripts named in
the docs (``mirror-relay``, ``mirror-commons``, …) must be declared in
pyproject.toml.
"""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib

import pytest

from node.cli.main import build_parser
from tests.helpers import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"```([a-z]*)\n(.*?)```", re.S)
SHELL_FENCES = {"", "sh", "bash", "shell", "console"}
INLINE = re.compile(r"`([^`\n]+)`")
SEPARATORS = {"|", "||", "&&", ";", ">", "<"}


def command_lines(text: str) -> list[str]:
    lines: list[str] = []
    for language, block in FENCE.findall(text):
        if language in SHELL_FENCES:  # ```text diagrams are not commands
            lines.extend(block.splitlines())
    without_fences = FENCE.sub("", text)
    lines.extend(INLINE.findall(without_fences))
    return lines


def mirror_invocations(line: str) -> list[list[str]]:
    """The argument lists of every ``mirror``/``mirror-*`` call on a line.

    Only words in command position count (first on the line or after ``|``,
    ``&&``, ``;``; ``VAR=value`` and ``sudo`` may stand before them), so a
    package name such as ``pip install mirror-reflect`` is not taken for one.
    """
    line = line.split(" #", 1)[0].strip()
    try:
        tokens = shlex.split(line)
    except ValueError:
        return []
    calls = []
    command_position = True
    for i, token in enumerate(tokens):
        if token in SEPARATORS:
            command_position = True
            continue
        if command_position and ("=" in token or token in {"sudo", "exec", "time"}):
            continue
        name = token.rsplit("/", 1)[-1]
        if command_position and (name == "mirror" or name.startswith("mirror-")):
            args = []
            for arg in tokens[i + 1 :]:
                if arg in SEPARATORS:
                    break
                args.append(arg)
            calls.append([name, *args])
        command_position = False
    return calls


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def check(tokens: list[str]) -> str | None:
    """None if *tokens* (after ``mirror``) parse as a real command, else why not."""
    parser = build_parser(every=True)
    positionals_seen = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in {"…", "...", "-"}:
            return None
        if token.startswith("-"):
            option = token.split("=", 1)[0]
            action = parser._option_string_actions.get(option)
            if action is None:
                return f"{parser.prog}: unknown option {option}"
            takes_value = action.nargs != 0 and "=" not in token
            if takes_value and action.choices and i + 1 < len(tokens):
                value = tokens[i + 1].split("|")[0]
                if value not in action.choices:
                    return f"{parser.prog} {option}: {value!r} not in {sorted(action.choices)}"
            i += 2 if takes_value else 1
            continue
        sub = _subparsers(parser)
        if sub is not None and positionals_seen == 0:
            name = token.split("|")[0]
            if name not in sub.choices:
                return f"{parser.prog}: no command {name!r}"
            parser = sub.choices[name]
            i += 1
            continue
        positionals = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
        if positionals_seen < len(positionals):
            action = positionals[positionals_seen]
            if action.choices and not token.isupper():
                for alternative in token.split("|"):
                    if alternative not in action.choices:
                        return f"{parser.prog}: {alternative!r} not in {sorted(action.choices)}"
            if action.nargs not in ("*", "+", "?") or action.nargs == "?":
                positionals_seen += 1
        i += 1
    return None


def documented() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        for line in command_lines(path.read_text(encoding="utf-8")):
            for call in mirror_invocations(line):
                found.append((f"{path.relative_to(REPO)}: {line.strip()}", call))
    return found


def test_the_docs_show_commands() -> None:
    assert len([c for c in documented() if c[1][0] == "mirror"]) >= 20


@pytest.mark.parametrize(("where", "call"), documented(), ids=lambda v: str(v)[:70])
def test_documented_command_exists(where: str, call: list[str]) -> None:
    name, *args = call
    if name == "mirror":
        problem = check(args)
        assert problem is None, f"{where}\n  {problem}"
    else:
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
        assert name in scripts, f"{where}\n  {name} is not a console script"


def test_only_words_in_command_position_are_commands() -> None:
    assert mirror_invocations("pip install mirror-reflect") == []
    assert mirror_invocations("MIRROR_HOME=x mirror list --json | jq .") == [
        ["mirror", "list", "--json"]
    ]
    assert mirror_invocations("echo hi | .venv/bin/mirror reflect --tag t") == [
        ["mirror", "reflect", "--tag", "t"]
    ]


def test_the_checker_catches_mistakes() -> None:
    assert check(["reflect", "--private", "text"]) is None
    assert check(["mode", "local|hybrid|cloud"]) is None
    assert check(["nonsense"]) is not None
    assert check(["reflect", "--no-such-flag"]) is not None
    assert check(["mode", "orbit"]) is not None
    assert check(["export", "--format", "pdf", "x"]) is not None
