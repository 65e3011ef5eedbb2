"""The ``mirror`` command: each command, its help, and one-line failures."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
import trio

from node.app.dates import parse_when
from node.cli.main import main
from node.core import open_core
from node.errors import UsageError
from node.home import Home
from tests.helpers import run_mirror


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_reflect_list_show_edit_delete(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "reflect", "--tag", "work", "I", "felt", "tired", "at", "work")
    assert status == 0 and out.startswith("saved ")
    rid = out.split()[1]
    status, out, _ = cli(capsys, "list", "--json")
    items = json.loads(out)
    assert [i["text"] for i in items] == ["I felt tired at work"]
    assert items[0]["tags"] == ["work"]
    assert items[0]["mirrorback"]["text"]
    status, out, _ = cli(capsys, "show", rid[:6])
    assert "I felt tired at work" in out and "mirrorback" in out
    status, out, _ = cli(capsys, "edit", rid[:6], "--text", "I felt rested at work")
    assert status == 0
    # The old mirrorback quoted the old words: a new one answers the new text.
    assert out.startswith(f"edited {rid}") and "rested" in out and "tired" not in out
    status, out, _ = cli(capsys, "show", rid, "--json")
    shown = json.loads(out)
    assert shown["text"] == "I felt rested at work"
    assert "rested" in shown["mirrorback"]["text"] and "tired" not in shown["mirrorback"]["text"]
    status, out, _ = cli(capsys, "edit", rid, "--no-mirrorback", "--text", "I felt calm")
    assert status == 0 and out.strip() == f"edited {rid}"
    status, out, _ = cli(capsys, "show", rid, "--json")
    assert json.loads(out)["mirrorback"] is None
    status, out, _ = cli(capsys, "delete", rid, "--yes")
    assert status == 0
    status, out, _ = cli(capsys, "list")
    assert "No reflections yet" in out


def test_private_and_backdated(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(
        capsys, "reflect", "--private", "--at", "2025-02-03T10:00+00:00", "--json", "secret"
    )
    data = json.loads(out)
    status, out, _ = cli(capsys, "show", data["id"], "--json")
    shown = json.loads(out)
    assert shown["private"] is True
    assert shown["created_at"].startswith("2025-02-03T10:00")


def test_reflect_reads_stdin(home_dir: Path) -> None:
    result = run_mirror(home_dir, "reflect", "--no-mirrorback", input="from a pipe\n")
    assert result.returncode == 0, result.stderr
    listed = run_mirror(home_dir, "list", "--json")
    assert [i["text"] for i in json.loads(listed.stdout)] == ["from a pipe"]


def test_failures_are_one_line(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, expected in [
        (["show", "zzzzzz"], "no reflection"),
        (["show", "ab"], "at least 4"),
        (["reflect", "--at", "yesterday-ish", "x"], "cannot read the date"),
        (["reflect", "--at", "2999-01-01", "x"], "in the future"),
        (["reflect", "   "], "needs some text"),
        (["delete", "zzzz"], "no reflection"),
    ]:
        status, out, err = cli(capsys, *args)
        assert status != 0, args
        assert err.startswith("mirror: ") and err.count("\n") == 1, (args, err)
        assert expected in err, (args, err)
    log = (home_dir / "logs" / "mirror.log").read_text()
    assert "Traceback" in log  # details go to the log, not the terminal


def test_bad_config_is_one_line(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home_dir.mkdir(parents=True)
    (home_dir / "config.json").write_text('{"mirror_mode": "orbit"}')
    status, _, err = cli(capsys, "status")
    assert status == 1
    assert "mirror_mode must be one of local, hybrid, cloud" in err
    (home_dir / "config.json").write_text("{nope")
    status, _, err = cli(capsys, "status")
    assert "not valid JSON" in err
    (home_dir / "config.json").write_text('{"engine_mode": "remote_llm"}')
    status, _, err = cli(capsys, "status")
    assert "which local mode never does: run mirror mode hybrid" in err


INVALID_CONFIGS = {
    # what config.json says -> (a word of the problem, can `mirror mode`/`engine` fix it)
    '{"mirror_mode": "local", "engine_mode": "remote_llm", "relays": ["https://r.example"]}':
        ("remote_llm", True),
    '{"mirror_mode": "orbit", "relays": ["https://r.example"]}': ("orbit", True),
    '{"engine_mode": "local_llm", "engine_api_base": "https://api.example.com"}':
        ("on this machine or the LAN", True),
    '{"mirror_mode": "local",': ("not valid JSON", False),
    '{"mirror_mode": "local", "colour": "blue"}': ("unknown setting 'colour'", False),
    '{"sync_enabled": "yes"}': ("sync_enabled must be true or false", False),
    '[1, 2]': ("expected a JSON object", False),
}


@pytest.mark.parametrize("text", sorted(INVALID_CONFIGS))
def test_an_invalid_config_never_locks_the_person_out(
    text: str, home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem, fixable = INVALID_CONFIGS[text]
    cli(capsys, "reflect", "written before the config broke")
    config_path = home_dir / "config.json"
    config_path.write_text(text)
    # Everything else refuses, in one line that says where to look.
    status, out, err = cli(capsys, "list")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert problem in err and "mirror status explains" in err
    # status, mode and engine run and say what is wrong and how to fix it.
    status, out, err = cli(capsys, "status")
    assert status == 1 and err.count("\n") == 1 and problem in err
    assert f"home: {home_dir}" in out and "reflections: 1" in out and problem in out
    assert ("mirror mode / mirror engine" if fixable else f"edit {config_path}") in err
    status, out, err = cli(capsys, "status", "--json")
    data = json.loads(out)
    assert status == 1 and problem in data["config_error"] and data["reflections"] == 1
    for command in ("mode", "engine"):
        status, out, err = cli(capsys, command)
        assert status == 1 and problem in err and err.count("\n") == 1, command
    status, out, err = cli(capsys, "engine", "--json")
    assert status == 1 and problem in json.loads(out)["config_error"]
    assert config_path.read_text() == text  # showing changes nothing
    if not fixable:
        status, out, err = cli(capsys, "mode", "local")
        assert status == 1 and problem in err and f"edit {config_path}" in err
        assert config_path.read_text() == text
        return
    # The fix keeps what else the file says.
    status, out, err = cli(capsys, "mode", "hybrid")
    assert status == 0, err
    assert out.strip() == "mode: hybrid (config.json is valid again)"
    status, out, err = cli(capsys, "list")
    assert status == 0 and "written before the config broke" in out
    saved = json.loads(config_path.read_text())
    assert saved["mirror_mode"] == "hybrid"
    assert saved["relays"] == json.loads(text).get("relays", [])


def test_engine_repairs_a_config_that_mode_alone_cannot(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "init")
    config_path = home_dir / "config.json"
    config_path.write_text('{"mirror_mode": "local", "engine_mode": "remote_llm", '
                           '"sync_peers": ["192.168.1.20:7000"]}')
    status, out, err = cli(capsys, "engine", "offline")
    assert status == 0, err
    assert out.startswith("engine: offline") and err == ""
    saved = json.loads(config_path.read_text())
    assert saved["engine_mode"] == "offline" and saved["sync_peers"] == ["192.168.1.20:7000"]
    status, out, err = cli(capsys, "mode")
    assert (status, out.strip(), err) == (0, "local", "")


def test_mode_and_status(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "mode")
    assert out.strip() == "local"
    cli(capsys, "mode", "hybrid")
    status, out, _ = cli(capsys, "status", "--json")
    data = json.loads(out)
    assert data["mirror_mode"] == "hybrid"
    assert data["engine_mode"] == "offline" and data["sync_enabled"] is False
    assert json.loads((home_dir / "config.json").read_text())["mirror_mode"] == "hybrid"


def test_export_json_and_markdown(
    home_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "reflect", "--at", "2026-01-05T09:00+00:00", "winter morning")
    cli(capsys, "reflect", "--private", "--at", "2026-02-05T09:00+00:00", "a private note")
    status, out, _ = cli(capsys, "export", "--format", "json", str(tmp_path / "all.json"))
    assert status == 0
    data = json.loads((tmp_path / "all.json").read_text())
    assert data["format"] == "mirror-export"
    assert {r["text"] for r in data["reflections"]} == {"winter morning", "a private note"}
    doc_ids = {d["doc_id"] for d in data["documents"]}
    assert doc_ids >= {"journal/2026-01", "journal-private/2026-02"}
    assert (tmp_path / "all.json").stat().st_mode & 0o077 == 0
    status, out, _ = cli(capsys, "export", "--format", "markdown", str(tmp_path / "md"))
    assert sorted(p.name for p in (tmp_path / "md").iterdir()) == ["2026-01.md", "2026-02.md"]
    assert "winter morning" in (tmp_path / "md" / "2026-01.md").read_text()
    status, _, err = cli(capsys, "export", "--format", "json", str(tmp_path / "no" / "x.json"))
    assert status != 0 and "no such directory" in err


def test_compact_command(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        cli(capsys, "reflect", "--no-mirrorback", f"entry {i}")
    status, out, _ = cli(capsys, "compact")
    assert status == 0 and "journal/" in out
    conn = sqlite3.connect(home_dir / "mirror.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 0
    finally:
        conn.close()
    status, out, _ = cli(capsys, "list", "--json")
    assert len(json.loads(out)) == 3


def test_help_everywhere() -> None:
    for command in ["", "init", "reflect", "list", "show", "edit", "delete", "export",
                    "compact", "status", "mode", "repl"]:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"] if command else ["--help"])
        assert exit_info.value.code == 0


def test_parse_when() -> None:
    assert parse_when("2026-01-02T03:04+00:00").isoformat() == "2026-01-02T03:04:00+00:00"
    with pytest.raises(UsageError):
        parse_when("not a date")


async def test_open_process_sees_one_shot_reflect(tmp_path: Path) -> None:
    """A one-shot ``mirror reflect`` while another process has the home open."""
    home = Home(tmp_path / "home")
    arrivals: list[str] = []
    async with open_core(home) as core:
        seen = trio.Event()

        def on_arrival(arrival: object) -> None:
            arrivals.extend(r.text for r in arrival.reflections)  # type: ignore[attr-defined]
            seen.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(core.watch, on_arrival)
            result = await trio.run_process(
                [*run_mirror_argv(), "reflect", "--no-mirrorback", "from the other process"],
                env=_env(home.path),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            with trio.fail_after(10):
                await seen.wait()
            nursery.cancel_scope.cancel()
        assert arrivals == ["from the other process"]
        assert [r.text for r in await core.journal.all()] == ["from the other process"]


def run_mirror_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "node.cli"]


def _env(home: Path) -> dict[str, str]:
    from tests.helpers import mirror_env

    return mirror_env(home)


def test_config_types_are_checked(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home_dir.mkdir(parents=True)
    for text, expected in [
        ('{"sync_enabled": "yes"}', "sync_enabled must be true or false"),
        ('{"sync_listen": "nowhere"}', "sync_listen must be HOST:PORT"),
        ('{"sync_listen": "127.0.0.1:99999"}', "port 0-65535"),
        ('{"discovery_interfaces": "127.0.0.1"}', "must be a list"),
        ('{"colour": "blue"}', "unknown setting 'colour'"),
        ('{"version": 7}', "newer Mirror"),
        ("[1, 2]", "expected a JSON object"),
    ]:
        (home_dir / "config.json").write_text(text)
        status, _, err = cli(capsys, "status")
        assert status == 1 and expected in err, (text, err)
    (home_dir / "config.json").write_text('{"discovery_interfaces": ["127.0.0.1"]}')
    status, out, _ = cli(capsys, "status")
    assert status == 0


def test_edit_opens_the_editor(home_dir: Path, tmp_path: Path) -> None:
    from tests.helpers import run_mirror

    result = run_mirror(home_dir, "reflect", "--no-mirrorback", "--json", "I felt tired today")
    rid = json.loads(result.stdout)["id"]
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/tired/rested/" "$1"\n')
    editor.chmod(0o755)
    result = run_mirror(home_dir, "edit", rid[:6], EDITOR=str(editor))
    assert result.returncode == 0, result.stderr
    shown = run_mirror(home_dir, "show", rid, "--json")
    assert json.loads(shown.stdout)["text"] == "I felt rested today"
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    result = run_mirror(home_dir, "edit", rid[:6], EDITOR=str(failing))
    assert result.returncode == 1 and "editor exited with status 3" in result.stderr
    result = run_mirror(home_dir, "edit", rid[:6], EDITOR="")
    assert result.returncode == 2 and "no editor" in result.stderr


def test_the_editors_draft_stays_in_the_home_and_is_removed(home_dir: Path, tmp_path: Path) -> None:
    result = run_mirror(home_dir, "reflect", "--no-mirrorback", "--json", "I felt tired today")
    rid = json.loads(result.stdout)["id"]
    seen = tmp_path / "seen.txt"
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\nstat -c "%a %n" "$(dirname "$1")" "$1" > {seen}\n'
                      f'cat "$1" >> {seen}\nsed -i "s/tired/rested/" "$1"\n')
    editor.chmod(0o755)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    # A draft some killed edit left behind (its process is gone) goes too.
    with subprocess.Popen(["true"]) as finished:
        finished.wait()
    stale_pid = finished.pid
    (home_dir / "drafts").mkdir(mode=0o700)
    stale = home_dir / "drafts" / f"edit-{stale_pid}.txt"
    stale.write_text("an old draft")
    result = run_mirror(home_dir, "edit", rid[:6], EDITOR=str(editor), TMPDIR=str(scratch))
    assert result.returncode == 0, result.stderr
    dir_line, file_line, content = seen.read_text().splitlines()
    assert dir_line == f"700 {home_dir / 'drafts'}"
    mode, draft = file_line.split(" ", 1)
    assert mode == "600" and Path(draft).parent == home_dir / "drafts"
    assert content == "I felt tired today"
    assert "the draft is" in result.stderr and "removed when the editor closes" in result.stderr
    assert not Path(draft).exists() and not stale.exists()
    assert not (home_dir / "drafts").exists()
    assert list(scratch.iterdir()) == []  # nothing in the temporary directory
    shown = run_mirror(home_dir, "show", rid, "--json")
    assert json.loads(shown.stdout)["text"] == "I felt rested today"


def test_an_editor_that_cannot_run_is_one_clear_line(home_dir: Path, tmp_path: Path) -> None:
    result = run_mirror(home_dir, "reflect", "--no-mirrorback", "--json", "I felt tired today")
    rid = json.loads(result.stdout)["id"]
    not_executable = tmp_path / "editor.txt"
    not_executable.write_text("not a program")
    for editor, words in [("/nonexistent", "was not found"),
                          (str(not_executable), "permission denied"),
                          ("vim 'unclosed", "cannot read $EDITOR")]:
        result = run_mirror(home_dir, "edit", rid[:6], EDITOR=editor)
        assert result.returncode in (1, 2), (editor, result.stderr)
        assert result.stderr.count("\n") == 1 and words in result.stderr, (editor, result.stderr)
        assert "unexpected" not in result.stderr and "--text" in result.stderr
    assert not (home_dir / "drafts").exists()


def test_share_keeps_private_shards_local(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "reflect", "--no-mirrorback", "--private", "--at", "2026-03-01T10:00+00:00", "p")
    cli(capsys, "reflect", "--no-mirrorback", "--at", "2026-03-01T10:00+00:00", "shared")
    status, out, _ = cli(capsys, "share", "journal", "--class", "devices")
    assert status == 0 and "private reflections stay" in out
    status, _, err = cli(capsys, "share", "journal-private/2026-03", "--class", "devices")
    assert status == 1 and "local by nature" in err
    status, out, _ = cli(capsys, "sync", "status", "--json")
    assert json.loads(out)["shared_documents"] == ["journal/2026-03"]


def test_a_closed_pipe_is_not_an_error(home_dir: Path) -> None:
    import subprocess
    import sys
    from datetime import UTC, datetime

    from crdt.journal import Reflection, new_reflection_id
    from tests.helpers import REPO, mirror_env, run_mirror

    async def fill() -> None:
        async with open_core(Home(home_dir)) as core:
            when = datetime(2026, 1, 1, tzinfo=UTC)
            await core.journal.add_many(
                [Reflection(new_reflection_id(), when, f"entry {i} " + "x" * 300)
                 for i in range(1000)]
            )

    trio.run(fill)  # ~400 kB of JSON: far more than a pipe holds
    assert run_mirror(home_dir, "status").returncode == 0
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(10)"], stdin=subprocess.PIPE
    )
    writer = subprocess.run(
        [sys.executable, "-m", "node.cli", "list", "--json"],
        stdout=reader.stdin, stderr=subprocess.PIPE, env=mirror_env(home_dir), cwd=REPO,
        check=False, timeout=60,
    )
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait(timeout=30)
    assert b"unexpected error" not in writer.stderr, writer.stderr


def test_graph_evidence_offsets_are_integers(home_dir: Path) -> None:
    from tests.helpers import run_mirror

    run_mirror(home_dir, "reflect", "--no-mirrorback", "My boss moved the deadline again")
    graph = json.loads(run_mirror(home_dir, "graph", "--json").stdout)
    offsets = [e[k] for n in graph["nodes"] for e in n["evidence"] for k in ("start", "end")]
    assert offsets and all(isinstance(v, int) for v in offsets)


# --------------------------------------------------------------------------- small things


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mirror {importlib.metadata.version('mirror-reflect')}\n"


def test_list_says_when_no_reflection_has_the_tag(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "list", "--tag", "nosuchtag")
    assert status == 0 and "No reflections yet" in out  # an empty home: that is the news
    for n in range(3):
        cli(capsys, "reflect", "--no-mirrorback", "--tag", "work", f"entry {n}")
    status, out, _ = cli(capsys, "list", "--tag", "nosuchtag", "--tag", "#other")
    assert status == 0
    assert out.strip() == "No reflection is tagged #nosuchtag or #other (3 reflections in all: " \
        "mirror list)"
    status, out, _ = cli(capsys, "list", "--tag", "work", "--limit", "2")
    assert [line.split()[-2] for line in out.splitlines()] == ["1", "2"]


@pytest.mark.parametrize("argv", [["list", "--limit", "0"], ["list", "--limit", "-3"],
                                  ["list", "--limit", "many"], ["related", "--limit", "0"]])
def test_a_limit_must_be_one_or_more(
    argv: list[str], home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.count("\n") == 1 and "--limit" in err and "see mirror" in err


def test_wrong_arguments_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["lst"], ["export", "--format", "yaml", "x"], ["mode", "sideways"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, (argv, err)
        assert err.startswith("mirror") and "--help" in err


def test_export_follows_the_name_or_refuses_a_mismatch(
    home_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "reflect", "--no-mirrorback", "--at", "2026-01-05", "first of January")
    cli(capsys, "reflect", "--no-mirrorback", "--at", "2026-02-05", "first of February")
    # The name says the format.
    status, out, _ = cli(capsys, "export", str(tmp_path / "journal.md"))
    assert status == 0 and out.strip().endswith("journal.md")
    text = (tmp_path / "journal.md").read_text()
    assert "# Reflections · 2026-01" in text and "# Reflections · 2026-02" in text
    assert not text.lstrip().startswith(("{", "["))
    status, out, _ = cli(capsys, "export", str(tmp_path / "all.JSON"))
    assert status == 0 and json.loads((tmp_path / "all.JSON").read_text())
    status, out, _ = cli(capsys, "export", "--format", "markdown", str(tmp_path / "months"))
    assert status == 0 and "(2 files)" in out
    # A name that says another format than the one asked for is refused; nothing written.
    for fmt, name, fix in (("json", "x.md", "name it x.json"),
                           ("markdown", "y.json", "name it y.md")):
        status, _, err = cli(capsys, "export", "--format", fmt, str(tmp_path / name))
        assert status == 2 and err.count("\n") == 1 and fix in err, err
        assert not (tmp_path / name).exists()
    # No extension and no --format: JSON, as before.
    status, _, _ = cli(capsys, "export", str(tmp_path / "plain"))
    assert status == 0 and json.loads((tmp_path / "plain").read_text())
