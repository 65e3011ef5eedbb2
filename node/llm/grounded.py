"""Answers and digests by a model, held to what the journal says.

``answer_with_model`` gives a model the question and the reflections retrieved
for it (``engine.ask``) — never a private one unless the model runs on this
machine (:func:`may_read_private`) — and accepts its answer only if every
reflection id it cites was given and every quote it attributes to one is in
that reflection (``ask.verify_citations``). Anything else — no model, no
answer, a citation that does not hold — gives the offline extractive answer,
with one line saying why.

``narrate_digest`` does the same for a digest: the model retells the
structured digest (``engine.digest``); it may cite only the digest's ids and
quote only words the digest holds, else the structured digest stands.

Private reflections live in a ``local`` document that never leaves the device
(DESIGN.md, sync classes). A model server elsewhere on the LAN or a remote API
is off the device, so only a model on this machine (loopback) is shown them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from ..engine.ask import Answer, Retrieved, extractive_answer, verify_citations
from ..engine.digest import Digest, digest_text
from ..prompts import load_prompt
from .client import LLMTarget, Message, chat, may_read_private

log = logging.getLogger("mirror.llm.grounded")

MAX_PROMPT_REFLECTION_CHARS = 2000
MAX_ANSWER_CHARS = 4000
_QUOTE_RE = re.compile(r"“([^”]+)”")


def ask_messages(question: str, retrieved: Retrieved, given: Sequence[str],
                 prompts_dir: Path | None) -> list[Message]:
    blocks = []
    for r in retrieved.reflections:
        if r.id in given:
            text = " ".join(r.text.split())[:MAX_PROMPT_REFLECTION_CHARS]
            blocks.append(f"[{r.id}] ({r.created_at.astimezone():%Y-%m-%d})\n{text}")
    return [
        {"role": "system", "content": load_prompt("ask.md", prompts_dir)},
        {"role": "user", "content": f"Question: {question}\n\nReflections:\n\n"
                                    + "\n\n".join(blocks)},
    ]


async def answer_with_model(
    target: LLMTarget, retrieved: Retrieved, *, prompts_dir: Path | None = None
) -> Answer:
    """The model's answer from *retrieved*, checked; else the offline one, saying why."""
    q = retrieved.question
    offline = extractive_answer(q, retrieved.citations, total=retrieved.total)
    sees_private = may_read_private(target)
    given = {r.id: r for r in retrieved.reflections if sees_private or not r.private}
    left_out = len(retrieved.reflections) - len(given)

    def fallback(why: str) -> Answer:
        return Answer(q.text, offline, retrieved.citations, "offline", note=why,
                      private_left_out=left_out)

    if not given:
        why = ("the reflections that answer it are private, and private reflections are "
               "shown only to a model on this machine" if left_out else "")
        return fallback(why)
    try:
        reply = (await chat(target, ask_messages(q.text, retrieved, list(given),
                                                  prompts_dir)))[:MAX_ANSWER_CHARS].strip()
    except Exception as exc:  # LLMError has one line; a key problem is a MirrorError
        log.warning("no answer from the model: %s", exc)
        return fallback(f"the model did not answer — {exc}")
    check = verify_citations(reply, given)
    if not check.ok:
        log.warning("the model's answer was not used: it %s", check.problem)
        return fallback(f"the model's answer was not used: it {check.problem}")
    cites = tuple(c for rid in check.cited for c in retrieved.citations if c.rid == rid)
    return Answer(q.text, reply, cites, "model", private_left_out=left_out)


def check_narration(text: str, digest: Digest, structured: str) -> str:
    """Why a narrated digest may not be used ("" if it may): an id or a quote that is
    not the digest's."""
    ids = {rid[:8] for rid in digest.cites}
    for m in re.finditer(r"\(([^()]*)\)", text):
        for ref in re.findall(r"[A-Za-z0-9]{8,}", m.group(1)):
            if ref[:8] not in ids and any(c.isdigit() for c in ref):
                return f"cites {ref}, not a reflection of the digest"
    flat = " ".join(structured.lower().split())
    for quote in _QUOTE_RE.findall(text):
        parts = [p for p in re.split(r"…|\.\.\.", quote) if p.strip()]
        if not all(" ".join(p.lower().split()) in flat for p in parts):
            return f"quotes “{quote}”, which the digest does not hold"
    return ""


async def narrate_digest(
    target: LLMTarget, digest: Digest, *, prompts_dir: Path | None = None
) -> tuple[str, str]:
    """(text, note): the model's retelling of *digest* if it holds to it, else the
    structured digest and why. The caller gives a digest the model may read."""
    structured = digest_text(digest)
    if digest.reflections == 0:
        return structured, ""
    messages: list[Message] = [
        {"role": "system", "content": load_prompt("digest.md", prompts_dir)},
        {"role": "user", "content": structured},
    ]
    try:
        text = (await chat(target, messages))[:MAX_ANSWER_CHARS].strip()
    except Exception as exc:
        log.warning("narrating the digest failed: %s", exc)
        return structured, f"the model did not answer — {exc}"
    if not text:
        return structured, "the model's answer was empty"
    problem = check_narration(text, digest, structured)
    if problem:
        log.warning("the narrated digest was not used: it %s", problem)
        return structured, f"the model's retelling was not used: it {problem}"
    return text, ""
