"""The typed results of the application layer's operations.

Frozen dataclasses with no behaviour beyond small derived properties: what a
front end needs to show an outcome, and nothing about how to show it. Results
from the engine that are already typed (``PatternSummary``, ``TensionSummary``,
``GraphView``, ``Answer``, ``MoodWeek`` …) are returned as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crdt import ScrubResult
from crdt.journal import Reflection

from ..config import Config
from ..core import ConfigProblem
from ..engine.digest import Digest
from ..engine.mood import MoodWeek
from ..engine.safety.reply import CrisisSignal
from ..engine.understanding import Evolution, RelatedReflection


@dataclass(frozen=True)
class SafetyCheck:
    """What the offline crisis check found in a reflection (it runs on every engine
    and its reply wins): ``tier`` is ``crisis`` (clear risk) or ``check_in``
    (possible risk, answered with a direct, kind check-in)."""

    tier: str
    category: str  # self_harm or harm_from_others
    kind: str  # passive, active, plan, … (node.engine.safety.reply.CrisisSignal)
    words: str  # the words that matched, as written

    @property
    def is_crisis(self) -> bool:
        return self.tier == "crisis"

    @classmethod
    def of(cls, signal: CrisisSignal | None) -> SafetyCheck | None:
        if signal is None:
            return None
        return cls(signal.tier, signal.category, signal.kind, signal.span.text)


@dataclass(frozen=True)
class WriteResult:
    """A saved reflection, its mirrorback (None when none was asked for or the engine
    gave none) and what the crisis check found."""

    reflection: Reflection
    mirrorback: str | None
    safety: SafetyCheck | None
    notices: tuple[str, ...] = ()  # engine notices (the model failed …), shown once, not saved


@dataclass(frozen=True)
class ScrubOutcome:
    """Whether this device's store file still holds words that were deleted or edited
    away; ``problem`` is the one-line message (with what to do) when it does."""

    result: ScrubResult
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class EditResult:
    """An edited reflection: how it read and reads, the old text's scrub, a new mirrorback."""

    before: Reflection
    after: Reflection
    scrub: ScrubOutcome | None  # None when the text did not change
    mirrorback: str | None = None  # a new one, when the text changed and one was asked for
    notices: tuple[str, ...] = ()

    @property
    def unchanged(self) -> bool:
        return self.before.text == self.after.text and self.before.tags == self.after.tags

    @property
    def text_changed(self) -> bool:
        return self.before.text != self.after.text


@dataclass(frozen=True)
class DeleteResult:
    """A deleted reflection and whether its words were scrubbed from every file."""

    reflection: Reflection
    scrub: ScrubOutcome


@dataclass(frozen=True)
class ReflectionList:
    """Reflections oldest first, and how many the journal holds in all."""

    reflections: tuple[Reflection, ...]
    total: int


@dataclass(frozen=True)
class Status:
    """What `mirror status` shows: the home, the modes, the engine and the counts."""

    home: Path
    mirror_mode: str
    engine_mode: str
    engine: str
    sync_enabled: bool
    reflections: int
    private_reflections: int
    documents: int
    journal_sync_class: str
    store_bytes: int
    client_id: int
    config_problem: ConfigProblem | None = None
    written: Config | None = None  # what an invalid config.json says, if it can be read


@dataclass(frozen=True)
class SettingsView:
    """The settings in use, and why config.json is not in use when it is not."""

    config: Config
    problem: ConfigProblem | None = None

    @property
    def shown(self) -> Config | None:
        """What to show: the config in use, or what an invalid file says (None: unreadable)."""
        return self.config if self.problem is None else self.problem.written


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: its format, where, and how many reflections."""

    format: str  # json or markdown
    target: Path
    files: tuple[Path, ...]
    reflections: int

    @property
    def single_file(self) -> bool:
        return len(self.files) == 1 and self.files[0] == self.target


@dataclass(frozen=True)
class EvolveResult:
    """An evolution note just written (this period against the one before)."""

    evolution: Evolution

    @property
    def text(self) -> str:
        return self.evolution.text


@dataclass(frozen=True)
class DigestResult:
    """A week or month retold: the digest, its text, and whether a model told it."""

    digest: Digest
    text: str
    method: str  # offline or model
    note: str  # why the model's retelling was not used, or ""
    data: dict[str, object] = field(default_factory=dict)  # the digest as JSON, with the above


@dataclass(frozen=True)
class MoodTimeline:
    """Mood per week, oldest first; weeks without reflections included."""

    weeks: tuple[MoodWeek, ...]

    @property
    def empty(self) -> bool:
        return not any(w.reflections for w in self.weeks)


@dataclass(frozen=True)
class RelatedResult:
    """The reflections most like one reflection, best first."""

    of: Reflection
    items: tuple[RelatedReflection, ...]


@dataclass(frozen=True)
class Device:
    """One device of the person's group, as the membership document lists it."""

    device_id: str
    name: str
    this_device: bool
    active: bool
    added_at: str
    removed_at: str | None
    last_seen: float | None
    address: str | None


@dataclass(frozen=True)
class DeviceRemoval:
    """A device removed from the group, and the key epoch that shuts it out."""

    device_id: str
    name: str
    epoch: int


@dataclass(frozen=True)
class ShareResult:
    """What a share changed: the documents whose sync class is now another."""

    what: str  # "journal" or a document id
    sync_class: str
    changed: tuple[str, ...]  # the documents whose class changed


@dataclass(frozen=True)
class SyncStatus:
    """Sync as the running service last reported it, and what is shared."""

    sync_enabled: bool
    serving: bool
    listening: str | None
    pending: int
    peers: tuple[dict[str, object], ...]  # as the running service wrote them (status.json)
    shared_documents: tuple[str, ...]


@dataclass(frozen=True)
class PairingOffer:
    """What the person reads out to the other device: the code, and where this one waits."""

    code: str
    address: str  # host:port
    timeout_s: float


@dataclass(frozen=True)
class PairingAttemptReport:
    """A device that tried the code (the one that got in, and any other)."""

    where: str
    outcome: str  # joined, refused, wrong_code, … (node.sync.pairing.AttemptOutcome)
    counted: bool  # counted against the code's guesses
    device_id: str | None
    name: str | None
    description: str  # one line for the person


@dataclass(frozen=True)
class PairingResult:
    """How a pairing ended: who joined, the attempts seen, or why it stopped."""

    joined_id: str | None  # the device that joined, if one did
    joined_name: str | None
    attempts: tuple[PairingAttemptReport, ...]
    failure: str | None  # why pairing stopped, when it did not time out

    @property
    def others(self) -> tuple[PairingAttemptReport, ...]:
        return tuple(a for a in self.attempts if a.outcome != "joined")

    @property
    def code_was_shared(self) -> bool:
        """Another device also knew the code (it was refused): the person should check."""
        return self.joined_id is not None and any(a.outcome == "refused" for a in self.others)


@dataclass(frozen=True)
class JoinResult:
    """This device joined a group: its size now, and whether through a relay."""

    devices: int  # the group's size now
    through_relay: bool
