"""What jrnl and Day One users expect: search, natural dates, inline #tags, stars,
on this day, stats, the editor for a new reflection, a pager, NO_COLOR, 80 columns."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crdt import open_store
from crdt.importers import apply_plan, read_source
from crdt.journal import Journal, Reflection
from node.cli.main import build_parser, main
from node.journal.search import search, snippet
from node.journal.stats import journal_stats, on_this_day
from node.journal.tags import TagCount, inline_tags, tag_counts, with_inline_tags
from node.pager import display_width, page, use_colour
from node.views.journal import format_list_line
from tests.helpers import REPO, mirror_env, run_mirror

ESC = "\x1b["


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def saved_id(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status, out, err = cli(capsys, "reflect", "--no-mirrorback", *args)
    assert status == 0, err
    return out.split()[1]


def _r(rid: str, text: str, at: datetime, tags: tuple[str, ...] = (), *,
       starred: bool = False, private: bool = False) -> Reflection:
    return Reflection(id=rid, created_at=at, text=text, tags=tags, starred=starred,
                      private=private)


T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


# --------------------------------------------------------------------------- search


def test_search_ranks_matches_stems_and_tags() -> None:
    items = [
        _r("a", "Worried about the deadline at work, worried all evening.", T0),
        _r("b", "A calm walk by the river.", T0 + timedelta(days=1), ("family",)),
        _r("c", "The deadline moved; less worry now.", T0 + timedelta(days=2)),
        _r("d", "Long day.", T0 + timedelta(days=3), ("work",)),
    ]
    hits = search(items, "worried deadline")
    assert [h.reflection.id for h in hits] == ["a", "c"]  # both words, twice: a first
    assert hits[0].matches == ((0, 7), (18, 26), (36, 43))
    # a tag counts as a word of its reflection, and #tag asks for the tag
    assert {h.reflection.id for h in search(items, "work")} == {"a", "d"}
    assert [h.reflection.id for h in search(items, "#family")] == ["b"]
    assert search(items, "nothing-like-this") == []
    assert search(items, "   ") == []
    assert [h.reflection.id for h in search(items, "deadline", limit=1)] == ["c"]  # tie: newest


def test_search_matches_whole_words_by_their_stem() -> None:
    items = [
        _r("a", "Homework again, and a workday.", T0),
        _r("b", "Working late; the work_flow broke.", T0 + timedelta(days=1)),
        _r("c", "Été: WORK, then rest.", T0 + timedelta(days=2)),
        _r("d", "I worry. Worries, worried, worrying.", T0 + timedelta(days=3)),
    ]
    assert {h.reflection.id for h in search(items, "work")} == {"b", "c"}
    assert [h.reflection.id for h in search(items, "été")] == ["c"]
    [hit] = search(items, "worried")
    assert hit.reflection.id == "d" and len(hit.matches) == 4  # worry, worries, worried, worrying


def test_snippet_is_around_the_first_match_and_keeps_its_offsets() -> None:
    text = "word " * 40 + "the needle is here " + "tail " * 40
    start = text.index("needle")
    window, spans = snippet(text, [(start, start + 6)], width=40)
    assert len(window) <= 40 and window.startswith("…") and window.endswith("…")
    a, b = spans[0]
    assert window[a:b] == "needle"


def test_cli_search_highlights_only_with_colour(
    home_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    saved_id(capsys, "Tired after the meeting at work")
    saved_id(capsys, "A quiet Sunday")
    status, out, _ = cli(capsys, "search", "work", "--color", "always")
    assert status == 0
    assert f"{ESC}1;33mwork{ESC}0m" in out  # the match, highlighted
    status, out, _ = cli(capsys, "search", "work")  # not a terminal: no colour
    assert status == 0 and ESC not in out and "Tired after the meeting at work" in out
    status, out, _ = cli(capsys, "search", "quiet", "--json")
    [hit] = json.loads(out)
    assert hit["reflection"]["text"] == "A quiet Sunday" and hit["matches"] == [[2, 7]]
    status, out, _ = cli(capsys, "search", "absent")
    assert status == 1 and out.startswith("Nothing found for 'absent'")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(sys.stdout, choice="auto")


def test_search_never_lets_stored_controls_through_with_colour(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_id(capsys, "evil \x1b]52;c;aGk=\x07 clipboard work")
    _, out, _ = cli(capsys, "search", "work", "--color", "always")
    assert "\x1b]" not in out and "\x07" not in out and f"{ESC}1;33mwork" in out


def _all_bytes(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_search_of_an_encrypted_home_writes_no_plaintext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MIRROR_HOME", str(home))
    monkeypatch.setenv("MIRROR_PASSPHRASE", "a passphrase for the test")
    monkeypatch.setenv("MIRROR_KDF_PROFILE", "min")
    assert cli(capsys, "init", "--passphrase")[0] == 0
    canary = "zanzibarcanary"
    saved_id(capsys, f"I told nobody about {canary}, not even #{canary}tag")
    before = _all_bytes(home)
    assert not any(canary.encode() in data for data in before.values())
    status, out, _ = cli(capsys, "search", canary)
    assert status == 0 and canary in out  # found, so read in the clear, in memory only
    cli(capsys, "tags")
    after = _all_bytes(home)
    assert set(after) == set(before), "search left a new file in the home"
    leaks = [name for name, data in after.items() if canary.encode() in data]
    assert not leaks, f"plaintext in {leaks}"


# --------------------------------------------------------------------------- dates on the CLI


def test_natural_dates_in_reflect_and_list(home_dir: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    old = saved_id(capsys, "--at", "2026-01-05", "first of January")
    recent = saved_id(capsys, "--at", "3 days ago", "three days back")
    now = saved_id(capsys, "just now")
    _, out, _ = cli(capsys, "show", recent, "--json")
    written = datetime.fromisoformat(json.loads(out)["created_at"]).astimezone()
    assert written.date() == (datetime.now() - timedelta(days=3)).date()
    assert (written.hour, written.minute) == (0, 0)

    def listed(*args: str) -> list[str]:
        status, out, err = cli(capsys, "list", "--json", *args)
        assert status == 0, err
        return [r["id"] for r in json.loads(out)]

    assert listed("--from", "2 weeks ago") == [recent, now]
    assert listed("--to", "last month") == [old]
    assert listed("--on", "2026-01") == [old]
    assert listed("--on", "jan 5 2026") == [old]
    assert listed("-n", "1") == [now]
    assert listed("--from", "2026-01-01", "-n", "2") == [recent, now]
    status, _, err = cli(capsys, "list", "--from", "someday")
    assert status == 2 and "cannot read the date 'someday'" in err
    status, _, err = cli(capsys, "list", "--from", "today", "--to", "2026-01-01")
    assert status == 2 and "before --from" in err


def test_the_natural_date_parser_reaches_every_date_option() -> None:
    parser = build_parser(every=True)
    help_texts = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():  # type: ignore[union-attr]
            help_texts += [(name, a.dest) for a in sub._actions
                           if a.metavar in ("DATE", "DATETIME")]
    # each of them goes through node.journal.dates (parse_when / parse_until / filter_of)
    assert ("reflect", "at") in help_texts and ("list", "from_") in help_texts
    assert ("search", "on") in help_texts and ("digest", "until") in help_texts


# --------------------------------------------------------------------------- tags


def test_inline_tags() -> None:
    assert inline_tags("At #work again, then #Self-care. C# and page#x are not; #1 neither, "
                       "&#39; neither, ## nor # this; #work once") == ("work", "self-care")
    assert with_inline_tags(["Family"], "with #family and #friends") == ("family", "friends")
    assert tag_counts([_r("a", "x", T0, ("b", "a")), _r("b", "y", T0, ("a",))]) == [
        TagCount("a", 2), TagCount("b", 1)]


def test_inline_tags_are_saved_and_counted(home_dir: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    rid = saved_id(capsys, "--tag", "evening", "Long day at #work, then #family dinner")
    saved_id(capsys, "More #work")
    _, out, _ = cli(capsys, "show", rid, "--json")
    assert json.loads(out)["tags"] == ["evening", "work", "family"]
    _, out, _ = cli(capsys, "tags")
    assert out.splitlines() == ["2  #work", "1  #evening", "1  #family"]
    _, out, _ = cli(capsys, "tags", "--json")
    assert json.loads(out)[0] == {"tag": "work", "count": 2}
    cli(capsys, "edit", rid, "--no-mirrorback", "--text", "Long day, and #rest")
    _, out, _ = cli(capsys, "show", rid, "--json")
    assert json.loads(out)["tags"] == ["evening", "work", "family", "rest"]


# --------------------------------------------------------------------------- stars


def test_star_unstar_and_the_starred_filter(home_dir: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    first = saved_id(capsys, "one")
    saved_id(capsys, "two")
    status, out, _ = cli(capsys, "star", first[:6])
    assert status == 0 and out.strip() == f"starred {first}"
    _, out, _ = cli(capsys, "list", "--starred", "--json")
    assert [(r["id"], r["starred"], r["edited_at"]) for r in json.loads(out)] == [
        (first, True, None)]  # starring is not an edit
    _, out, _ = cli(capsys, "list")
    assert "★" in out.splitlines()[0] and "★" not in out.splitlines()[1]
    _, out, _ = cli(capsys, "show", first)
    assert "★ starred" in out.splitlines()[0]
    cli(capsys, "unstar", first)
    _, out, _ = cli(capsys, "list", "--starred")
    assert out.startswith("No reflection is starred")


async def test_jrnl_and_day_one_stars_are_kept_on_import(tmp_path: Path) -> None:
    jrnl = tmp_path / "jrnl.json"
    jrnl.write_text(json.dumps({"tags": {}, "entries": [
        {"date": "2024-05-01", "time": "09:00", "title": "Starred one.", "body": "",
         "tags": [], "starred": True},
        {"date": "2024-05-02", "time": "09:00", "title": "Plain one.", "body": "",
         "tags": [], "starred": False},
    ]}))
    dayone = tmp_path / "dayone.json"
    dayone.write_text(json.dumps({"metadata": {"version": "1.0"}, "entries": [
        {"uuid": "A1", "creationDate": "2024-06-01T10:00:00Z", "text": "Day One star",
         "starred": True},
        {"uuid": "A2", "creationDate": "2024-06-02T10:00:00Z", "text": "Day One plain"},
    ]}))
    async with open_store(tmp_path / "s.db") as store:
        for source in (jrnl, dayone):
            await apply_plan(store, read_source(source, default_tz=UTC))
        items = await Journal(store).all()
    assert [(r.text, r.starred) for r in items] == [
        ("Starred one.", True), ("Plain one.", False), ("Day One star", True),
        ("Day One plain", False)]


async def test_a_star_survives_export_and_import(tmp_path: Path) -> None:
    from crdt.export import reflection_from_json, reflection_to_json

    r = _r("abcdabcdabcd", "x", T0, starred=True)
    assert reflection_from_json(reflection_to_json(r)) == r
    async with open_store(tmp_path / "s.db") as store:
        journal = Journal(store)
        added = await journal.add("a star", created_at=T0)
        assert (await journal.set_starred(added.id, True)).starred
        [again] = await journal.all()
        assert again.starred and again.edited_at is None


# --------------------------------------------------------------------------- on this day, stats


def test_on_this_day_and_stats() -> None:
    today = date(2026, 12, 9)
    at = [datetime(2024, 12, 9, 8, tzinfo=UTC), datetime(2025, 12, 9, 8, tzinfo=UTC),
          datetime(2025, 12, 9, 20, tzinfo=UTC), datetime(2025, 12, 10, 8, tzinfo=UTC),
          datetime(2026, 12, 7, 8, tzinfo=UTC), datetime(2026, 12, 8, 8, tzinfo=UTC),
          datetime(2026, 12, 9, 8, tzinfo=UTC)]
    items = [_r(f"r{i}", "one two three" if i else "a few more words here", moment, ("x",),
                starred=i == 1)
             for i, moment in enumerate(at)]
    years = on_this_day(items, today, UTC)
    assert [(y.years, [r.id for r in y.reflections]) for y in years] == [
        (1, ["r1", "r2"]), (2, ["r0"])]
    stats = journal_stats(items, today, zone=UTC, weeks=3)
    assert (stats.entries, stats.words, stats.days_written, stats.starred) == (7, 23, 6, 1)
    assert (stats.current_streak.days, stats.current_streak.first) == (3, date(2026, 12, 7))
    assert stats.longest_streak.days == 3
    assert [(w.week_start, w.entries) for w in stats.weeks] == [
        (date(2026, 11, 23), 0), (date(2026, 11, 30), 0), (date(2026, 12, 7), 3)]
    # yesterday's streak still counts today (the day is not over)
    assert journal_stats(items[:-1], today, zone=UTC).current_streak.days == 2
    assert journal_stats([], today).current_streak.days == 0
    # 29 February shows on 28 February of a year without one
    leap = [_r("leap", "x", datetime(2024, 2, 29, 12, tzinfo=UTC))]
    assert on_this_day(leap, date(2025, 2, 28), UTC)[0].years == 1


def test_cli_onthisday_and_stats(home_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved_id(capsys, "--at", "2025-03-04T10:00", "a year before")
    saved_id(capsys, "--at", "2026-03-04T10:00", "the day itself")
    status, out, _ = cli(capsys, "onthisday", "--date", "2026-03-04")
    assert status == 0 and out.startswith("1 year ago, Tuesday 04 March 2025")
    assert "a year before" in out and "the day itself" not in out
    _, out, _ = cli(capsys, "onthisday", "--date", "2026-03-05")
    assert out.strip() == "Nothing written on 05 March in earlier years."
    status, out, _ = cli(capsys, "stats", "--json", "--weeks", "4")
    data = json.loads(out)
    assert status == 0 and data["entries"] == 2 and data["words"] == 6
    assert len(data["weeks"]) == 4 and data["longest_streak"]["days"] == 1
    status, out, _ = cli(capsys, "stats")
    assert status == 0 and "entries        2" in out and "entries per week" in out


# --------------------------------------------------------------------------- the editor


def _run_on_a_terminal(home: Path, args: list[str], **env: str) -> tuple[int, str]:
    """Run mirror with stdin and stdout on a pseudo-terminal; (status, output)."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", *args], stdin=child_fd,
                            stdout=child_fd, stderr=child_fd, env=mirror_env(home, **env),
                            cwd=REPO)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_reflect_without_text_on_a_terminal_opens_the_editor(
    home_dir: Path, tmp_path: Path
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "Written in the editor #vim\\n" > "$1"\n')
    editor.chmod(0o755)
    status, out = _run_on_a_terminal(home_dir, ["reflect", "--no-mirrorback"],
                                     EDITOR=str(editor))
    assert status == 0 and "saved " in out, out
    listed = run_mirror(home_dir, "list", "--json")
    [r] = json.loads(listed.stdout)
    assert (r["text"], r["tags"]) == ("Written in the editor #vim", ["vim"])
    assert not (home_dir / "drafts").exists()

    empty = tmp_path / "empty.sh"
    empty.write_text('#!/bin/sh\n: > "$1"\n')
    empty.chmod(0o755)
    status, out = _run_on_a_terminal(home_dir, ["reflect"], EDITOR=str(empty))
    assert status == 0 and "nothing saved: the editor's text was empty" in out
    assert len(json.loads(run_mirror(home_dir, "list", "--json").stdout)) == 1
    status, out = _run_on_a_terminal(home_dir, ["reflect"], EDITOR="", VISUAL="")
    assert status == 2 and "set $EDITOR" in out


# --------------------------------------------------------------------------- pager, colour, width


def test_the_pager_runs_only_on_a_terminal_for_long_output(tmp_path: Path) -> None:
    marker = tmp_path / "paged"
    env = {"PAGER": f"cat > {marker}", "LINES": "10", "COLUMNS": "80"}
    long_text = "\n".join(f"line {i}" for i in range(30))
    main_fd, child_fd = pty.openpty()
    with open(child_fd, "w", encoding="utf-8", closefd=True) as tty:
        page("short", tty, env)
        assert not marker.exists()
        page(long_text, tty, env)
    os.close(main_fd)
    assert marker.read_text() == long_text + "\n"
    marker.unlink()
    with open(tmp_path / "plain.txt", "w", encoding="utf-8") as not_a_tty:
        page(long_text, not_a_tty, env)
    assert not marker.exists() and (tmp_path / "plain.txt").read_text() == long_text + "\n"


def test_mirror_list_pages_on_a_terminal_and_never_into_a_pipe(
    home_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(30):
        saved_id(capsys, f"entry number {n}")
    marker = tmp_path / "paged"
    env = {"PAGER": f"cat > {marker}", "LINES": "10", "COLUMNS": "80"}
    piped = run_mirror(home_dir, "list", **env)
    assert piped.stdout.count("entry number") == 30 and not marker.exists()
    status, _ = _run_on_a_terminal(home_dir, ["list"], **env)
    assert status == 0 and marker.read_text().count("entry number") == 30


def test_search_on_a_terminal_is_coloured_unless_no_color(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_id(capsys, "Tired after the meeting at work")
    status, out = _run_on_a_terminal(home_dir, ["search", "meeting"], PAGER="cat")
    assert status == 0 and f"{ESC}1;33mmeeting{ESC}0m" in out
    status, out = _run_on_a_terminal(home_dir, ["search", "meeting"], PAGER="cat", NO_COLOR="1")
    assert status == 0 and "meeting" in out and ESC not in out


def test_list_lines_fit_80_columns() -> None:
    r = _r("abcdefghjkmn", "A very long reflection " * 20 + "界" * 50, T0,
           tuple(f"tag{i}" for i in range(20)), starred=True, private=True)
    line = format_list_line(r, 80)
    assert display_width(line) <= 80 and "★" in line and "🔒" in line
    assert display_width(format_list_line(_r("abcdefghjkmn", "short", T0), 80)) <= 80


def test_mirror_help_fits_80_columns(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    for args in (["--help"], ["list", "--help"], ["search", "--help"], ["reflect", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert max(display_width(line) for line in out.splitlines()) <= 80, args
        if args == ["--help"]:
            for command in ("search", "tags", "star", "unstar", "onthisday", "stats"):
                assert f"\n    {command} " in out


def test_the_weekly_sparkline_marks_empty_weeks() -> None:
    from node.views.conventions import sparkline

    assert sparkline([0, 1, 2, 8, 4, 0]) == "·▁▂█▄·"
    assert sparkline([0, 0]) == "··"
