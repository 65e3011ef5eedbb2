"""Text from elsewhere never drives the person's terminal.

Every escape sequence a hostile reflection, Commons post or device name might
carry is checked against :func:`node.terminal.printable` one by one, then
through the real program: what ``mirror`` writes (stdout and stderr, the
commands' own lines and their errors) holds no control character but newline
and tab, and nothing of a sequence's payload.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node.cli.main import main
from node.terminal import SafeOutput, printable, unfiltered
from tests.helpers import REPO, mirror_env

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# (name, hostile text, what must be left of it)
SEQUENCES = [
    ("OSC 52 clipboard write, BEL", "a\x1b]52;c;ZWNobyBwd25lZA==\x07b", "ab"),
    ("OSC 52 clipboard write, ST", "a\x1b]52;c;ZWNobyBwd25lZA==\x1b\\b", "ab"),
    ("OSC 0 window title", "a\x1b]0;you have been pwned\x07b", "ab"),
    ("OSC 8 hyperlink", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),
    ("CSI 2J clear screen", "a\x1b[2Jb", "ab"),
    ("CSI cursor up and erase line", "a\x1b[1A\x1b[2Kb", "ab"),
    ("CSI colours", "\x1b[31;1mred\x1b[0m", "red"),
    ("CSI private mode (alternate screen)", "a\x1b[?1049hb", "ab"),
    ("CSI device status report (the terminal answers)", "a\x1b[6nb", "ab"),
    ("8-bit CSI 2J", "a\x9b2Jb", "ab"),
    ("8-bit OSC 52 with 8-bit ST", "a\x9d52;c;cHduZWQ=\x9cb", "ab"),
    ("DCS", "a\x1bP1$r0m\x1b\\b", "ab"),
    ("APC", "a\x1b_Gsecret\x1b\\b", "ab"),
    ("PM and SOS", "a\x1b^pm\x1b\\\x1bXsos\x1b\\b", "ab"),
    ("ESC c full reset", "a\x1bcb", "ab"),
    ("ESC 7 / ESC 8 save and restore cursor", "a\x1b7b\x1b8c", "abc"),
    ("ESC ( 0 line drawing", "a\x1b(0b\x1b(Bc", "abc"),
    ("a lone ESC at the end", "ab\x1b", "ab"),
    ("an unterminated OSC ends with its line", "a\x1b]0;title\nnext line", "a\nnext line"),
    ("carriage return overwrite", "harmless\rEVIL", "harmlessEVIL"),
    ("backspaces", "rm -rf\b\b\b\b\b\bls", "rm -rfls"),
    ("bell, NUL, DEL, C1 NEL", "a\x07\x00\x7f\x85b", "ab"),
]


@pytest.mark.parametrize(("name", "hostile", "left"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_each_control_sequence_is_removed_whole(name: str, hostile: str, left: str) -> None:
    assert printable(hostile) == left


def test_writing_is_kept_as_written() -> None:
    text = "Tabs\tand lines\nstay; so do accents (é), emoji 👩‍👩‍👧, RTL marks \u200f and CJK 日本"
    assert printable(text) == text


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_no_control_character_survives_and_printing_twice_changes_nothing(text: str) -> None:
    shown = printable(text)
    assert not CONTROL.search(shown)
    assert printable(shown) == shown


def test_safe_output_filters_every_write_and_keeps_the_streams_own_controls_apart() -> None:
    raw = io.StringIO()
    safe = SafeOutput(raw)
    print("title\x1b]0;pwned\x07!", file=safe)
    safe.writelines(["a\x1b[2J", "b\n"])
    unfiltered(safe).write("\r")  # the program's own progress line
    assert raw.getvalue() == "title!\nab\n\r"
    assert unfiltered(raw) is raw


HOSTILE = "I wrote \x1b]52;c;ZXZpbA==\x07this\x1b[2J\x9b2J \x1b]0;pwned\x07today"


def _clean(text: str) -> bool:
    return not CONTROL.search(text) and "52;c" not in text and "pwned" not in text


def test_every_command_output_is_filtered(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reflect", "--no-mirrorback", "--json", HOSTILE]) == 0
    rid = json.loads(capsys.readouterr().out)["id"]
    for argv in (["list"], ["show", rid], ["show", rid, "--json"], ["list", "--json"],
                 ["reflect", HOSTILE], ["patterns"], ["related", rid],
                 ["show", "\x1b]52;c;ZXZpbA==\x07nosuchid"],
                 ["graph", "rename", "\x1b]0;pwned\x07", "x"]):
        main(argv)
        out, err = capsys.readouterr()
        assert out or err
        if "--json" in argv or "nosuchid" in argv[-1] or argv[0] == "graph":
            # JSON writes C0 controls as \u escapes, and error lines quote with repr():
            # plain text either way, the data kept exact
            assert not CONTROL.search(out) and not CONTROL.search(err), (argv, out, err)
        if "--json" in argv:
            data = json.loads(out)
            first = data if isinstance(data, dict) else data[0]
            assert first["text"].startswith("I wrote \x1b]52;c;ZXZpbA==\x07this")
        elif "nosuchid" not in argv[-1] and argv[0] != "graph":
            assert _clean(out) and _clean(err), (argv, out, err)
    main(["show", rid])
    assert "I wrote this today" in capsys.readouterr().out


async def test_commons_titles_and_bodies_are_filtered(tmp_path: Path) -> None:
    from tests.commons_helpers import mirror, running_commons

    alice, bob = tmp_path / "alice", tmp_path / "bob"
    async with running_commons(tmp_path / "server") as server:
        for home in (alice, bob):
            assert (await mirror(home, "commons", "add", server.url))[0] == 0
        status, out = await mirror(alice, "commons", "post", "--title", f"T {HOSTILE}",
                                   "--body", f"B {HOSTILE}", "--yes")
        assert status == 0, out
        thread = out.split("published ", 1)[1].split()[0]
        for argv in (["commons", "read"], ["commons", "read", thread]):
            done = await trio.run_process([sys.executable, "-m", "node.cli", *argv],
                                          env=mirror_env(bob), cwd=REPO, capture_stdout=True,
                                          capture_stderr=True, check=False)
            out, err = done.stdout.decode(), done.stderr.decode()
            assert done.returncode == 0, err
            assert "I wrote this" in out and _clean(out) and _clean(err), argv


def test_device_names_from_other_devices_are_filtered(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A device of the group (a hostile or broken one) gave itself this name; it
    # arrives in the membership document like any other.
    from node.core import open_core
    from node.home import Home
    from node.sync.runner import open_group

    async def add_device() -> None:
        async with open_core(Home(home_dir)) as core:
            group = await open_group(core)
            group.add_device(bytes(range(32)), f"tablet {HOSTILE}")
            await core.store.wait_durable()

    trio.run(add_device)
    assert main(["devices", "--json"]) == 0
    tablet = next(d for d in json.loads(capsys.readouterr().out) if not d["this_device"])
    for argv in (["devices"], ["devices", "remove", tablet["device_id"][:8], "--yes"]):
        assert main(argv) == 0, argv
        out, err = capsys.readouterr()
        assert "tablet I wrote this today" in out and _clean(out) and _clean(err), (argv, out)
