"""Writing an export of everything: JSON to one file; Markdown to one ``.md`` file or
a folder with one file per month. Files are created readable by the person only."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from crdt import DocStore
from crdt.export import export_json, export_markdown

from ..errors import MirrorError, UsageError
from ..files import write_private

EXPORT_FORMATS = ("json", "markdown")
EXPORT_SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown"}


def export_format(fmt: str | None, target: Path) -> str:
    """The format to write *target* in: the one asked for, else the one its name
    says (``.json``, ``.md``), else JSON. A name that says another format than
    the one asked for is refused: nobody wants JSON in ``journal.md``."""
    named = EXPORT_SUFFIXES.get(target.suffix.lower())
    if fmt is None:
        return named or "json"
    if named is not None and named != fmt:
        fix = (f"name it {target.with_suffix('.json').name}" if fmt == "json" else
               f"name it {target.with_suffix('.md').name} (one file) or a folder (one file "
               "per month)")
        raise UsageError(f"{target.name} is named like a {named} file but the format is "
                         f"{fmt}: {fix}, or leave out --format")
    return fmt


def is_single_markdown_file(target: Path) -> bool:
    return EXPORT_SUFFIXES.get(target.suffix.lower()) == "markdown"


async def write_export(store: DocStore, fmt: str | None, target: Path) -> list[Path]:
    """Write an export of everything in *store*; *fmt* None: the format the name says."""
    fmt = export_format(fmt, target)
    if fmt == "json":
        data = await export_json(store)
        files = {"": json.dumps(data, ensure_ascii=False, indent=1) + "\n"}
    else:
        files = await export_markdown(store)
    return await trio.to_thread.run_sync(_write_export_files, fmt, target, files)


def _write_export_files(fmt: str, target: Path, files: dict[str, str]) -> list[Path]:
    target = target.expanduser()
    if not target.absolute().parent.is_dir():
        raise UsageError(f"{target.parent}: no such directory")
    try:
        return _write_export_files_unchecked(fmt, target, files)
    except OSError as exc:
        raise MirrorError(f"{exc.filename or target}: cannot write ({exc.strerror})") from None


def _write_export_files_unchecked(fmt: str, target: Path, files: dict[str, str]) -> list[Path]:
    if fmt == "json":
        if target.is_dir():
            raise UsageError(f"{target}: is a directory (json writes one file)")
        write_private(target, files[""])
        return [target]
    if is_single_markdown_file(target):
        if target.is_dir():
            raise UsageError(f"{target}: is a directory (a .md name writes one file)")
        write_private(target, "\n\n".join(files[name] for name in sorted(files)))
        return [target]
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a directory (markdown writes a folder)")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        write_private(target / name, text)
        written.append(target / name)
    return written
