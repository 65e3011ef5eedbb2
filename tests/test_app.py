"""The application layer (node.app): every operation called directly, typed results,
nothing printed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crdt.errors import DocumentError
from node.app import Mirror, open_mirror
from node.engine.ask import Answer
from node.errors import MirrorError, UsageError
from node.home import Home


@pytest.fixture
async def mirror(tmp_path: Path) -> AsyncIterator[Mirror]:
    async with open_mirror(Home(tmp_path / "home")) as m:
        yield m


async def test_write_returns_the_reflection_its_mirrorback_and_no_risk(mirror: Mirror) -> None:
    result = await mirror.write("I felt tired at work after the long meeting", tags=["Work"])
    assert result.reflection.tags == ("work",)
    assert result.mirrorback and "meeting" in result.mirrorback
    assert result.safety is None and result.notices == ()
    saved = await mirror.find(result.reflection.id[:6])
    assert saved.mirrorback is not None and saved.mirrorback.text == result.mirrorback


async def test_write_reports_what_the_crisis_check_found(mirror: Mirror) -> None:
    result = await mirror.write("I want to kill myself tonight")
    assert result.safety is not None and result.safety.is_crisis
    assert result.safety.category == "self_harm" and "kill myself" in result.safety.words
    assert result.mirrorback is not None
    unanswered = await mirror.write("a quiet walk by the river", mirrorback=False)
    assert unanswered.mirrorback is None and unanswered.safety is None


async def test_write_refuses_a_time_in_the_future(mirror: Mirror) -> None:
    with pytest.raises(UsageError):
        await mirror.write("tomorrow", at=datetime.now(UTC) + timedelta(days=1))


async def test_search_by_words_tags_dates_and_limit(mirror: Mirror) -> None:
    jan = datetime(2026, 1, 5, tzinfo=UTC)
    await mirror.write("Running in the rain", tags=["sport"], at=jan, mirrorback=False)
    await mirror.write("A calm evening reading", at=jan + timedelta(days=30), mirrorback=False)
    await mirror.write("Rain again, running late", at=jan + timedelta(days=60),
                       mirrorback=False)
    found = await mirror.search("rain RUNNING")
    assert [r.text for r in found.reflections] == ["Running in the rain",
                                                   "Rain again, running late"]
    assert found.total == 3
    assert [r.text for r in (await mirror.search(tags=["#sport"])).reflections] == [
        "Running in the rain"]
    since = await mirror.search(since=jan + timedelta(days=1), until=jan + timedelta(days=31))
    assert [r.text for r in since.reflections] == ["A calm evening reading"]
    newest = await mirror.reflections(limit=1)
    assert [r.text for r in newest.reflections] == ["Rain again, running late"]
    assert (await mirror.reflections(limit=0)).reflections == ()


async def test_edit_relearns_scrubs_and_answers_again(mirror: Mirror) -> None:
    written = await mirror.write("I felt tired at work")
    same = await mirror.edit(written.reflection.id, text="I felt tired at work ")
    assert same.unchanged and same.scrub is None
    edited = await mirror.edit(written.reflection.id, text="I felt rested at work")
    assert edited.text_changed and edited.after.text == "I felt rested at work"
    assert edited.scrub is not None and edited.scrub.complete
    assert edited.mirrorback and "rested" in edited.mirrorback and "tired" not in edited.mirrorback
    retagged = await mirror.edit(written.reflection.id, tags=["calm"])
    assert retagged.after.tags == ("calm",) and retagged.scrub is None


async def test_delete_scrubs_and_the_reflection_is_gone(mirror: Mirror) -> None:
    written = await mirror.write("a secret about the garden")
    deleted = await mirror.delete(written.reflection.id[:8])
    assert deleted.reflection.id == written.reflection.id
    assert deleted.scrub.complete and deleted.scrub.problem is None
    with pytest.raises(DocumentError):
        await mirror.find(written.reflection.id)
    assert (await mirror.scrub()).complete


async def test_understanding_views(mirror: Mirror) -> None:
    start = datetime(2026, 3, 2, 20, tzinfo=UTC)
    texts = ["I want rest but work keeps pulling me back, and I feel anxious",
             "Work again late; I want rest, I feel anxious and guilty",
             "Anxious about work, wanting rest, choosing work again"]
    for i, text in enumerate(texts):
        await mirror.write(text, at=start + timedelta(days=i))
    assert any(p.key == "work" or "work" in p.label for p in await mirror.patterns(minimum=2))
    assert isinstance(await mirror.tensions(everything=True), list)
    view = await mirror.graph()
    node = mirror.graph_node(view, "work")
    assert node in view.nodes
    edit = await mirror.edit_graph("rename", node, label="my job")
    assert edit.op == "rename" and edit.label == "my job"
    with pytest.raises(UsageError):
        await mirror.edit_graph("explode", node)
    related = await mirror.related()
    assert related.of.text == texts[-1] and related.items
    answer = await mirror.ask("when did I feel anxious?")
    assert isinstance(answer, Answer) and answer.citations
    digest = await mirror.digest("month", until=start + timedelta(days=5))
    assert digest.method == "offline" and digest.digest.reflections == 3
    assert digest.data["text"] == digest.text
    mood = await mirror.mood(weeks=4, until=start + timedelta(days=3))
    assert len(mood.weeks) == 4 and not mood.empty
    with pytest.raises(UsageError):
        await mirror.mood(weeks=0)
    evolved = await mirror.evolve(since=start)
    assert evolved.text and evolved.evolution.note_id
    assert await mirror.reindex() == 3


async def test_settings_change_and_take_effect(mirror: Mirror) -> None:
    assert mirror.settings().config.mirror_mode == "local"
    assert (await mirror.set_mode("hybrid")).mirror_mode == "hybrid"
    assert mirror.config.mirror_mode == "hybrid"
    with pytest.raises(UsageError):
        await mirror.set_mode("orbit")
    assert await mirror.set_country("Germany") == "DE"
    assert mirror.config.country == "DE"
    assert await mirror.set_country("none") == ""
    with pytest.raises(UsageError):
        await mirror.set_engine("psychic")
    assert (await mirror.set_engine("offline")).engine_mode == "offline"
    assert (await mirror.set_sync_enabled(True)).sync_enabled
    on_disk = json.loads(mirror.home.config_path.read_text())
    assert on_disk["mirror_mode"] == "hybrid" and on_disk["sync_enabled"] is True


async def test_status_export_and_import(mirror: Mirror, tmp_path: Path) -> None:
    await mirror.write("first", mirrorback=False)
    await mirror.write("second, kept here", private=True, mirrorback=False)
    status = await mirror.status()
    assert (status.reflections, status.private_reflections) == (2, 1)
    assert status.engine == "offline" and status.config_problem is None
    exported = await mirror.export(tmp_path / "all.json")
    assert exported.format == "json" and exported.single_file and exported.reflections == 2
    folder = await mirror.export(tmp_path / "md", "markdown")
    assert folder.format == "markdown" and not folder.single_file and folder.files
    with pytest.raises(UsageError):
        await mirror.export(tmp_path / "journal.md", "json")
    async with open_mirror(Home(tmp_path / "other")) as other:
        report = await other.import_file(tmp_path / "all.json")
        assert report.imported == 2
        assert (await other.reflections()).total == 2
        garbage = tmp_path / "garbage.json"
        garbage.write_text("{not json")
        with pytest.raises(MirrorError, match="nothing imported"):
            await other.import_file(garbage)


async def test_devices_sharing_and_sync_status(mirror: Mirror) -> None:
    await mirror.write("shared soon", mirrorback=False)
    devices = await mirror.devices()
    assert len(devices) == 1 and devices[0].this_device and devices[0].active
    assert (await mirror.find_device(devices[0].device_id[:6])).name == devices[0].name
    shared = await mirror.share("journal", "devices")
    assert shared.sync_class == "devices" and shared.changed
    status = await mirror.sync_status()
    assert set(shared.changed) <= set(status.shared_documents)
    assert not status.serving
    with pytest.raises(UsageError):
        await mirror.share("journal", "commons")
    with pytest.raises(MirrorError):
        await mirror.share("no-such-document", "devices")


async def test_the_application_layer_prints_nothing(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    written = await mirror.write("I feel lost and tired")
    await mirror.search("lost")
    await mirror.edit(written.reflection.id, text="I feel found")
    await mirror.status()
    await mirror.delete(written.reflection.id)
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")


async def test_the_commons_offline_and_the_settings_by_name(mirror: Mirror) -> None:
    view = await mirror.commons_read(offline=True)
    assert view.items == () and view.sync is None and view.thread is None
    assert await mirror.published() == []
    with pytest.raises(UsageError):
        mirror.commons_check("post", {"title": "", "body": "no title"})
    assert mirror.commons_check("post", {"title": "t", "body": "b"}) == {"title": "t",
                                                                         "body": "b"}
    with pytest.raises(UsageError):
        await mirror.commons_insight("pattern", "nothing-like-this")
    with pytest.raises(MirrorError):
        mirror.commons_server()  # no server added yet
    new = await mirror.change_settings(relays=("ws://127.0.0.1:9/",))
    assert new.relays == mirror.config.relays and len(new.relays) == 1


async def test_journal_conventions_are_operations_of_the_app(mirror: Mirror) -> None:
    first = await mirror.save("Tired after the meeting at #work", at=datetime(2025, 12, 8, 9,
                                                                               tzinfo=UTC))
    second = await mirror.save("A calm walk by the river")
    assert first.tags == ("work",)
    [hit] = await mirror.search_ranked("meeting")
    assert hit.reflection.id == first.id and hit.matches
    assert [t.tag for t in await mirror.tags()] == ["work"]
    assert (await mirror.star(second.id)).starred
    starred = await mirror.listing(mirror.journal_filter(starred=True))
    assert [r.id for r in starred.reflections] == [second.id] and starred.total == 2
    since = mirror.journal_filter(from_="2 weeks ago")
    assert [h.reflection.id for h in await mirror.search_ranked("calm meeting", within=since)
            ] == [second.id]
    with pytest.raises(UsageError, match="cannot read the date"):
        mirror.journal_filter(on="someday")
    [year] = await mirror.on_this_day(datetime(2026, 12, 8).date())
    assert year.years == 1 and year.reflections[0].id == first.id
    stats = await mirror.journal_stats(weeks=2)
    assert stats.entries == 2 and len(stats.weeks) == 2
