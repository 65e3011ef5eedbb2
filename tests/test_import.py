"""Import from Day One, jrnl and Markdown folders: what is kept, what is skipped,
no duplicates, and hostile or malformed files import nothing (T5)."""

from __future__ import annotations

import io
import json
import random
import shutil
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from crdt import open_store
from crdt.import_plan import ImportFileError, ImportLimits, ImportReport, stable_reflection_id
from crdt.importers import apply_plan, read_source
from crdt.journal import Journal, Reflection
from node.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def import_into(db: Path, source: Path) -> tuple[ImportReport, list[Reflection]]:
    plan = read_source(source, default_tz=UTC)
    async with open_store(db) as store:
        report = await apply_plan(store, plan)
        return report, await Journal(store).all()


async def test_dayone_json_and_zip_keep_dates_tags_and_text(tmp_path: Path) -> None:
    report, items = await import_into(tmp_path / "a.db", FIXTURES / "dayone" / "Journal.json")
    assert report.imported == 2
    first, second = items
    assert first.created_at == datetime(2023, 5, 14, 7, 42, 10, tzinfo=UTC)
    assert first.tags == ("morning", "garden")
    assert first.text == (
        "Watered the tomatoes before work. The light was soft!\n\nI want more mornings like this."
    )
    assert "dayone-moment" not in second.text
    assert second.text.startswith("Hard conversation with M. today.")
    reasons = {s.reason for s in report.skipped}
    assert "photos only, no text" in reasons
    # the zip holds the same journal: same ids, so nothing is new
    report2, items2 = await import_into(tmp_path / "a.db", FIXTURES / "dayone.zip")
    assert report2.imported == 0 and report2.already_present == 2
    assert len(items2) == 2
    assert any("media file" in s.reason for s in report2.skipped)


async def test_jrnl_export(tmp_path: Path) -> None:
    report, items = await import_into(tmp_path / "j.db", FIXTURES / "jrnl.json")
    assert [(r.created_at, r.text, r.tags) for r in items] == [
        (datetime(2022, 11, 20, 19, 5, tzinfo=UTC),
         "Called my sister. We laughed about the old house for an hour.", ("family",)),
        (datetime(2022, 11, 26, 10, 30, tzinfo=UTC), "Slept in", ("rest",)),
    ]
    assert [s.reason for s in report.skipped] == ["no text"]


async def test_markdown_folder_dates_from_front_matter_or_name(tmp_path: Path) -> None:
    report, items = await import_into(tmp_path / "m.db", FIXTURES / "markdown")
    by_day = {r.created_at.date().isoformat(): r for r in items}
    walk = by_day["2024-03-09"]
    assert walk.created_at == datetime(2024, 3, 9, 16, 20, tzinfo=UTC)
    assert walk.tags == ("outside", "thinking")
    assert walk.text.startswith("Long walk\n\nThe path by the allotments")
    assert by_day["2024-03-01"].text.startswith("First day of spring")
    skipped = {s.where: s.reason for s in report.skipped}
    assert "no date" in skipped["notes-without-date.md"]


async def test_importing_twice_creates_no_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    for source in ("jrnl.json", "markdown", "dayone.zip"):
        await import_into(db, FIXTURES / source)
    report, items = await import_into(db, FIXTURES / "jrnl.json")
    assert report.imported == 0 and report.already_present == 2
    assert len(items) == 6
    assert len({r.id for r in items}) == 6


def test_stable_ids_are_valid_reflection_ids() -> None:
    rid = stable_reflection_id("dayone", "uuid:X")
    assert rid == stable_reflection_id("dayone", "uuid:X") != stable_reflection_id("jrnl", "uuid:X")
    assert len(rid) == 12 and rid.isalnum()


def test_cli_import_reports_and_is_idempotent(
    home_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = cli(capsys, "import", str(FIXTURES / "jrnl.json"))
    assert status == 0, err
    assert out.startswith("imported 2 reflections (jrnl)")
    assert "skipped jrnl.json entry 3: no text" in out
    status, out, _ = cli(capsys, "import", "--json", str(FIXTURES / "jrnl.json"))
    assert json.loads(out)["imported"] == 0 and json.loads(out)["already_present"] == 2
    status, out, _ = cli(capsys, "import", "--dry-run", "--private", str(FIXTURES / "markdown"))
    assert out.startswith("would import 2 reflections")
    status, out, _ = cli(capsys, "list", "--json")
    assert len(json.loads(out)) == 2


# --------------------------------------------------------------------------- hostile input


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


GOOD_JOURNAL = (FIXTURES / "dayone" / "Journal.json").read_bytes()
BAD_FILES: dict[str, tuple[str, bytes, str]] = {
    "invalid json": ("x.json", b'{"entries": [', "invalid JSON"),
    "not utf-8": ("x.json", b"\xff\xfe{", "not UTF-8"),
    "entries not a list": ("x.json", b'{"metadata": {}, "entries": {}}', "'entries' is an object"),
    "date is a number": (
        "x.json", b'{"metadata": {}, "entries": [{"uuid": "a", "creationDate": 5}]}',
        "'creationDate' is a number",
    ),
    "entry not an object": ("x.json", b'{"metadata": {}, "entries": [1]}', "expected an object"),
    "tags not text": (
        "x.json",
        b'{"metadata": {}, "entries": [{"creationDate": "2020-01-01T00:00:00Z", "text": "a",'
        b' "tags": [1]}]}',
        "tags must be a list of text",
    ),
    "jrnl bad date": (
        "x.json", b'{"tags": {}, "entries": [{"date": "2020-13-45", "title": "a"}]}',
        "cannot read the date",
    ),
    "unknown json": ("x.json", b'{"hello": 1}', "not a Day One, jrnl or Mirror"),
    "truncated zip": ("x.zip", _zip({"Journal.json": GOOD_JOURNAL})[:200], "damaged zip"),
    "traversal in zip": (
        "x.zip", _zip({"../../evil.json": GOOD_JOURNAL}), "unsafe file name"
    ),
    "absolute name in zip": ("x.zip", _zip({"/etc/evil.json": GOOD_JOURNAL}), "unsafe file name"),
    "zip without journal": ("x.zip", _zip({"photos/a.jpg": b"x"}), "no journal JSON"),
    "bomb": ("x.zip", _zip({"Journal.json": b" " * (3 * 1024 * 1024)}), "unpacks"),
    "mirror newer": ("x.json", b'{"format": "mirror-export", "version": 99}', "newer Mirror"),
    "mirror bad state": (
        "x.json",
        b'{"format": "mirror-export", "version": 1, "documents": [{"doc_id": "journal/2020-01",'
        b' "kind": "journal", "sync_class": "local", "state": "//79/Pv6"}]}',
        "CRDT state",
    ),
    "mirror bad class": (
        "x.json",
        b'{"format": "mirror-export", "version": 1, "documents": [{"doc_id": "x", "kind": "k",'
        b' "sync_class": "everyone", "state": ""}]}',
        "unknown sync class",
    ),
}
SMALL = ImportLimits(max_member_bytes=2 * 1024 * 1024, max_file_bytes=8 * 1024 * 1024)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
async def test_malformed_files_import_nothing(case: str, tmp_path: Path) -> None:
    name, data, message = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImportFileError, match=message) as info:
        read_source(path, limits=SMALL)
    assert "\n" not in str(info.value)


def test_malformed_file_through_the_cli_is_one_line_and_writes_nothing(
    home_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one good entry followed by a broken one: nothing at all is imported
    bad = tmp_path / "half.json"
    bad.write_text(json.dumps({"metadata": {}, "entries": [
        {"uuid": "a", "creationDate": "2020-01-01T00:00:00Z", "text": "fine"},
        {"uuid": "b", "creationDate": "yesterday", "text": "broken"},
    ]}))
    status, out, err = cli(capsys, "import", str(bad))
    assert status == 1 and out == ""
    assert err.startswith("mirror: nothing imported:") and err.count("\n") == 1
    status, out, _ = cli(capsys, "list", "--json")
    assert json.loads(out) == []


def test_zip_member_count_and_size_limits(tmp_path: Path) -> None:
    many = tmp_path / "many.zip"
    many.write_bytes(_zip({f"j{i}.json": b"{}" for i in range(20)}))
    with pytest.raises(ImportFileError, match="more than 10 files"):
        read_source(many, limits=ImportLimits(max_zip_members=10))
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(ImportFileError, match="bytes"):
        read_source(big, limits=ImportLimits(max_file_bytes=1024))


def test_mutated_inputs_give_a_plan_or_one_clear_error(tmp_path: Path) -> None:
    """T5: truncations and byte flips of every fixture: a plan or ImportFileError, nothing else."""
    rng = random.Random(8)
    sources = [FIXTURES / "dayone.zip", FIXTURES / "jrnl.json",
               FIXTURES / "dayone" / "Journal.json"]
    path = tmp_path / "mutant"
    for source in sources:
        data = source.read_bytes()
        cuts = sorted({rng.randrange(len(data)) for _ in range(40)})
        mutants = [data[:c] for c in cuts]
        for _ in range(60):
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            mutants.append(bytes(flipped))
        for mutant in mutants:
            target = path.with_suffix(source.suffix)
            target.write_bytes(mutant)
            try:
                read_source(target, limits=SMALL)
            except ImportFileError as exc:
                assert "\n" not in str(exc)


def test_markdown_folder_does_not_follow_links(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    shutil.copytree(FIXTURES / "markdown", folder)
    outside = tmp_path / "2020-01-01-outside.md"
    outside.write_text("outside the folder")
    (folder / "2020-01-01-link.md").symlink_to(outside)
    plan = read_source(folder, default_tz=UTC)
    assert all("outside the folder" not in r.text for r in plan.reflections)
    assert any("links are not followed" in s.reason for s in plan.skipped)


# --------------------------------------------------------------------------- shared limits

EAST = timezone(timedelta(hours=2))  # near year 1, converting to UTC would overflow


@pytest.mark.parametrize("day", ["1850-01-01", "0001-01-01"])
def test_jrnl_dates_before_1900_are_refused_like_day_one(day: str, tmp_path: Path) -> None:
    jrnl = tmp_path / "old.json"
    jrnl.write_text(json.dumps({"tags": {}, "entries": [{"date": day, "title": "old"}]}))
    dayone = tmp_path / "old-dayone.json"
    dayone.write_text(json.dumps({"metadata": {}, "entries": [
        {"uuid": "a", "creationDate": day, "text": "old"},
    ]}))
    with pytest.raises(ImportFileError) as jrnl_error:
        read_source(jrnl, default_tz=EAST)
    with pytest.raises(ImportFileError) as dayone_error:
        read_source(dayone, default_tz=EAST)
    assert str(jrnl_error.value) == f"old.json entry 1: date {day!r} is before 1900"
    assert str(dayone_error.value) == f"old-dayone.json entry a: date {day!r} is before 1900"


@pytest.mark.parametrize("day", ["1850-01-01", "0001-01-01"])
def test_markdown_file_name_dates_before_1900_are_skipped(day: str, tmp_path: Path) -> None:
    note = tmp_path / f"{day}-note.md"
    note.write_text("An old note.")
    plan = read_source(note, default_tz=EAST)
    assert plan.reflections == []
    assert [(s.where, s.reason) for s in plan.skipped] == [
        (note.name, f"date {day!r} is before 1900")
    ]


def _dayone_entries(prefix: str, count: int, text: str) -> bytes:
    return json.dumps({"metadata": {}, "entries": [
        {"uuid": f"{prefix}{i}", "creationDate": "2020-01-01T00:00:00Z", "text": text}
        for i in range(count)
    ]}).encode()


def test_dayone_zip_entry_limit_counts_skipped_entries(tmp_path: Path) -> None:
    limits = ImportLimits(max_entries=10)
    path = tmp_path / "x.zip"
    # 5 + 5 entries read: at the limit, imported
    path.write_bytes(_zip({"a.json": _dayone_entries("s", 5, ""),
                           "b.json": _dayone_entries("g", 5, "kept")}))
    plan = read_source(path, limits=limits)
    assert len(plan.reflections) == 5 and len(plan.skipped) == 5
    # 8 entries without text, then 8 good ones: 16 read, only 8 accepted
    path.write_bytes(_zip({"a.json": _dayone_entries("s", 8, ""),
                           "b.json": _dayone_entries("g", 8, "kept")}))
    with pytest.raises(ImportFileError) as info:
        read_source(path, limits=limits)
    assert str(info.value) == f"{path}: more than 10 entries in its journals together"


def test_single_markdown_file_has_the_markdown_size_limit(tmp_path: Path) -> None:
    note = tmp_path / "2024-03-01.md"
    note.write_text("A note.\n" + "x" * 992)  # 1000 bytes
    limits = ImportLimits(max_markdown_file_bytes=999, max_file_bytes=10_000)
    for fmt in ("auto", "markdown"):
        with pytest.raises(ImportFileError) as info:
            read_source(note, fmt, limits=limits)
        assert str(info.value) == (
            f"{note}: 1000 bytes is more than the 999 a Markdown file may have"
        )
    plan = read_source(note, limits=replace(limits, max_markdown_file_bytes=1000))
    assert len(plan.reflections) == 1


async def test_mirror_export_entry_limit(tmp_path: Path) -> None:
    # A Mirror export was bounded by its file size only; its reflections now
    # count against max_entries like every other format's entries.
    from crdt.export import export_json

    async with open_store(tmp_path / "src.db") as store:
        journal = Journal(store)
        for i in range(6):
            await journal.add(f"entry {i}", created_at=datetime(2024, 1 + i, 1, tzinfo=UTC))
        full = await export_json(store)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(full))
    plan = read_source(path, limits=ImportLimits(max_entries=6))
    assert sum(len(d.reflection_ids) for d in plan.documents) == 6
    with pytest.raises(ImportFileError) as info:
        read_source(path, limits=ImportLimits(max_entries=5))
    assert str(info.value) == "export.json: more than 5 reflections"
    with pytest.raises(ImportFileError) as info:
        read_source(path, limits=ImportLimits(max_documents=len(full["documents"]) - 1))
    assert str(info.value) == f"export.json: more than {len(full['documents']) - 1} documents"
    trimmed = {"format": full["format"], "version": full["version"],
               "reflections": full["reflections"]}
    path.write_text(json.dumps(trimmed))
    assert len(read_source(path, limits=ImportLimits(max_entries=6)).reflections) == 6
    with pytest.raises(ImportFileError) as info:
        read_source(path, limits=ImportLimits(max_entries=5))
    assert str(info.value) == "export.json: more than 5 reflections"
