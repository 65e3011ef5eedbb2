"""``LLMEngine``: mirrorbacks from a local model server or a remote API, via litellm.

Order of a mirrorback:

1. risk of harm is checked offline (``engine.safety``) — if found, the
   crisis reply or the check-in is given and no model is called, so a model
   can never soften it;
1b. the model is asked, whatever the prompt file says, to open its answer with
   a risk line (``RISK: clear`` or ``RISK: possible``) when it reads a risk the
   offline net missed; the engine then gives the offline crisis reply or
   check-in instead of the model's words. A model can add a risk signal, never
   remove one;
2. a private reflection is sent only to a model on this machine (a loopback
   address, ``client.may_read_private``): for a remote API, a server on the LAN
   or one named by a host name it gets the offline mirrorback;
3. the prompt (``prompts/mirrorback.md``, overridable in the home) gets the
   recurring threads of the recent past, found offline;
4. the answer streams; if the model cannot answer (not running, timeout,
   refused key, garbage), the person gets one line saying so (an
   ``EngineNotice``: shown and logged, never part of the saved mirrorback) and —
   unless the config turns the fallback off — the offline mirrorback.

``model`` reports what actually wrote the last mirrorback (``offline-v1
(fallback)`` after a fallback), which is what the journal records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ..engine.base import EngineNotice, MirrorbackRequest
from ..engine.mood import most_troubled_sentence
from ..engine.offline import OfflineEngine
from ..engine.recurrence import PAST_WINDOW, recurring_threads, theme_label
from ..engine.safety import CrisisSignal, crisis_reply, detect_crisis
from ..engine.text import analyze
from ..prompts import fill, load_prompt
from .client import LLMError, LLMTarget, Message, may_read_private, stream_chat

log = logging.getLogger("mirror.llm.engine")

MAX_PROMPT_REFLECTION_CHARS = 8000
FALLBACK_SUFFIX = " (fallback)"
RISK_LINE_LOOKAHEAD_CHARS = 40  # how much of the answer is held back to look for a risk line
RISK_INSTRUCTION = (
    "Safety comes before everything above. If the reflection suggests the person may be "
    "thinking of ending their life or of hurting themselves, or that someone is hurting, "
    "threatening or endangering them — even indirectly — answer with exactly one line and "
    "nothing else: `RISK: clear` when the risk is plain, `RISK: possible` when it may be "
    "there; add ` others` when the harm comes from someone else (`RISK: clear others`). "
    "Otherwise write the mirrorback and never mention risk."
)
_RISK_LINE_RE = re.compile(r"^\W*risk\s*[:=-]\s*(clear|possible)(?:\W+(others|self))?", re.I)

TargetFactory = Callable[[], LLMTarget]


def patterns_block(request: MirrorbackRequest) -> str:
    """The recurring threads of the recent past, as facts for the prompt."""
    past = [r for r in request.past[-PAST_WINDOW:] if r.id != request.reflection.id]
    threads = recurring_threads(analyze(request.reflection.text), past)
    if not threads:
        return "Past patterns: none found in the recent reflections."
    lines = ["Past patterns (facts from the person's recent reflections):"]
    for t in threads[:5]:
        what = theme_label(t.key) if t.kind == "theme" else t.key
        lines.append(f"- {t.kind} “{what}”: in {t.count} of the last {t.window} reflections")
    return "\n".join(lines)


def build_messages(request: MirrorbackRequest, prompts_dir: Path | None) -> list[Message]:
    system = fill(load_prompt("mirrorback.md", prompts_dir), patterns=patterns_block(request))
    system = f"{system}\n\n{RISK_INSTRUCTION}"
    text = request.reflection.text[:MAX_PROMPT_REFLECTION_CHARS]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"My reflection:\n\n{text}"},
    ]


class LLMEngine:
    """An engine that asks a model through litellm, with the offline engine behind it."""

    def __init__(
        self,
        name: str,
        target: TargetFactory,
        *,
        model: str,
        prompts_dir: Path | None = None,
        fallback: bool = True,
        remote: bool = False,
        country: str = "",
    ) -> None:
        self.name = name
        self._target = target
        self._model = model
        self.model = model  # what wrote the last mirrorback; the journal records it
        self.prompts_dir = prompts_dir
        self.fallback = fallback
        self.remote = remote
        self.country = country  # whose crisis lines a crisis reply names
        self.offline = OfflineEngine(country=country)

    def target(self) -> LLMTarget:
        """Where the model is (reads the key now, for a remote engine). Raises MirrorError."""
        return self._target()

    async def stream(self, request: MirrorbackRequest) -> AsyncIterator[str | EngineNotice]:
        self.model = self._model
        text = request.reflection.text
        signal = detect_crisis(text)
        if signal is not None:
            self.model = self.offline.model
            for piece in self._safety_reply(text, signal):
                yield piece
            return
        if request.reflection.private and not self.may_read_private():
            self.model = self.offline.model
            async for piece in self.offline.stream(request):
                yield piece
            return
        started = False
        try:
            target = self.target()
            pieces = stream_chat(target, build_messages(request, self.prompts_dir))
            opening = ""  # held back until it cannot be the start of a risk line
            async for piece in pieces:
                opening += piece
                if len(opening.strip()) >= RISK_LINE_LOOKAHEAD_CHARS:
                    break
            risk = model_risk(opening.lstrip(), text)
            if risk is not None:
                close = getattr(pieces, "aclose", None)  # end the model's stream now
                if close is not None:
                    await close()
                self.model = self.offline.model
                for p in self._safety_reply(text, risk):
                    yield p
                return
            if opening.strip():
                started = True
                yield opening.lstrip()
            async for piece in pieces:
                started = True
                yield piece
            if not started:
                raise LLMError(f"{target.describe()}: the answer was empty")
        except LLMError as exc:
            if started:
                log.warning("the model stopped mid-answer: %s", exc)
                yield EngineNotice(f"the model stopped: {exc}")
                return
            log.warning("no mirrorback from the model: %s", exc)
            if not self.fallback:
                raise
            self.model = self.offline.model + FALLBACK_SUFFIX
            yield EngineNotice(f"the model did not answer — {exc}; "
                               "here is the offline mirrorback")
            async for piece in self.offline.stream(request):
                yield piece
        except Exception as exc:  # a key problem and the like: MirrorError has one line
            if started or not self.fallback:
                raise
            log.warning("no mirrorback from the model: %s", exc)
            self.model = self.offline.model + FALLBACK_SUFFIX
            yield EngineNotice(f"the model could not be asked — {exc}; "
                               "here is the offline mirrorback")
            async for piece in self.offline.stream(request):
                yield piece

    def may_read_private(self) -> bool:
        """Whether this engine's model runs on this machine (never a remote API; the key
        of a remote engine is not even read for a private reflection)."""
        if self.remote:
            return False
        try:
            return may_read_private(self.target())
        except Exception:  # no target, no model: the offline engine answers anyway
            return False

    def _safety_reply(self, text: str, signal: CrisisSignal) -> list[str]:
        paragraphs = crisis_reply(text, signal, self.country).split("\n\n")
        return [p if i == 0 else "\n\n" + p for i, p in enumerate(paragraphs)]


def model_risk(answer: str, text: str) -> CrisisSignal | None:
    """The risk a model's answer opens with (``RISK: clear others``...), as a signal
    quoting the sentence of *text* that reads most troubled; None for an ordinary answer."""
    m = _RISK_LINE_RE.match(answer)
    if m is None:
        return None
    sentence = most_troubled_sentence(text)
    return CrisisSignal(
        "harm_from_others" if (m.group(2) or "").lower() == "others" else "self_harm",
        "crisis" if m.group(1).lower() == "clear" else "check_in",
        "model",
        sentence,
        sentence,
    )
