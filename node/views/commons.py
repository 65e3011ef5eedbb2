"""The Commons as text: the list of threads, one thread with its comments."""

from __future__ import annotations

from crdt.commons import CommonsItem


def short_id(doc_id: str) -> str:
    return doc_id.rsplit("/", 1)[-1]


def render_threads(items: list[CommonsItem]) -> str:
    threads = sorted((i for i in items if i.kind in ("post", "insight")),
                     key=lambda i: (i.created_at, i.doc_id), reverse=True)
    if not threads:
        return "No threads yet: start one with 'mirror commons post'."
    comments: dict[str, int] = {}
    for i in items:
        if i.kind == "comment":
            comments[i.thread] = comments.get(i.thread, 0) + 1
    return "\n".join(
        f"{short_id(t.doc_id)}  {t.created_at[:16]:16}  {t.author[:8]}  "
        f"{one_line(t.title, 50)}  ({comments.get(t.doc_id, 0)} comments)"
        for t in threads)


def render_thread(thread: CommonsItem, items: list[CommonsItem]) -> str:
    lines = [thread.title, f"{thread.kind} by {thread.author[:12]} · {thread.created_at}", "",
             thread.body]
    reactions: dict[str, int] = {}
    for i in items:
        if i.kind == "reaction" and i.thread == thread.doc_id:
            reactions[i.reaction] = reactions.get(i.reaction, 0) + 1
    if reactions:
        lines += ["", "  ".join(f"{k} {v}" for k, v in sorted(reactions.items()))]
    comments = sorted((i for i in items if i.kind == "comment" and i.thread == thread.doc_id),
                      key=lambda i: (i.created_at, i.doc_id))
    lines += ["", f"{len(comments)} comments"]
    for c in comments:
        lines += [f"  — {c.author[:12]} · {c.created_at}", *("    " + x for x in
                                                           c.body.splitlines() or [""])]
    return "\n".join(lines)


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
