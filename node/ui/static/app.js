// Mirror's local web interface: plain JavaScript, no build step, no third-party code.
// Every element is built with DOM calls (never parsed from HTML strings), so text from the
// journal, peers or the Commons is always text.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const DRAFT_KEY = "mirror.draft";
  const state = { csrf: null, view: "", query: new URLSearchParams(), rerender: null };

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    return fill(el, attrs, kids);
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    return fill(el, attrs, kids);
  }
  function fill(el, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const main = () => document.getElementById("main");
  function announce(text) {
    const el = document.getElementById("announce");
    el.textContent = "";
    setTimeout(() => { el.textContent = text; }, 30);
  }
  function setMain(title, ...kids) {
    const m = main();
    m.replaceChildren(h("h1", { text: title }), ...kids);
    document.title = `${title} · Mirror`;
  }
  function fmtDate(iso, withTime) {
    const d = new Date(iso);
    const opts = withTime
      ? { dateStyle: "medium", timeStyle: "short" } : { dateStyle: "full" };
    return new Intl.DateTimeFormat(undefined, opts).format(d);
  }
  function highlighted(text, words) {
    const ws = words.filter(Boolean).map((w) => w.toLowerCase());
    if (!ws.length) return [text];
    const out = [];
    const lower = text.toLowerCase();
    let i = 0;
    while (i < text.length) {
      let best = -1, len = 0;
      for (const w of ws) {
        const at = lower.indexOf(w, i);
        if (at >= 0 && (best < 0 || at < best)) { best = at; len = w.length; }
      }
      if (best < 0) { out.push(text.slice(i)); break; }
      if (best > i) out.push(text.slice(i, best));
      out.push(h("mark", { text: text.slice(best, best + len) }));
      i = best + len;
    }
    return out;
  }
  function errorBox(err) {
    return h("p", { class: "error", role: "alert", text: err.message || String(err) });
  }

  // ---------------------------------------------------------------- API

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (method !== "GET") init.headers["X-Mirror-CSRF"] = state.csrf;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (!res.ok) {
      let reason = `${res.status}`;
      try { reason = (await res.json()).error || reason; } catch (e) { /* not JSON */ }
      throw new Error(reason);
    }
    return res;
  }
  const get = async (path) => (await api("GET", path)).json();
  const send = async (method, path, body) => (await api(method, path, body)).json();

  async function* ndjson(res) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line);
      }
    }
  }

  // ---------------------------------------------------------------- Write

  function tagsOf(text) {
    return text.split(/[\s,]+/).map((t) => t.replace(/^#/, "")).filter(Boolean);
  }

  async function viewWrite() {
    let draft = {};
    try { draft = JSON.parse(localStorage.getItem(DRAFT_KEY) || "{}"); } catch (e) { draft = {}; }
    const text = h("textarea", { id: "w-text", class: "editor", rows: 12,
      placeholder: "What is on your mind?" });
    text.value = draft.text || "";
    const tags = h("input", { id: "w-tags", type: "text", placeholder: "work, family",
      autocomplete: "off" });
    tags.value = draft.tags || "";
    const priv = h("input", { id: "w-private", type: "checkbox" });
    priv.checked = !!draft.private;
    const keep = () => localStorage.setItem(DRAFT_KEY, JSON.stringify(
      { text: text.value, tags: tags.value, private: priv.checked }));
    for (const el of [text, tags, priv]) el.addEventListener("input", keep);
    const save = h("button", { type: "submit", id: "w-save", text: "Save" });
    const result = h("section", { id: "w-result", "aria-live": "polite" });
    const form = h("form", { class: "panel", id: "w-form" },
      h("label", { for: "w-text", text: "Your reflection" }), text,
      h("p", { class: "hint", id: "w-hint",
        text: "Kept as a draft in this browser until you save. Ctrl+Enter saves." }),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "w-tags", text: "Tags" }), tags),
        h("label", { class: "inline", for: "w-private" }, priv,
          "Private: stays on this device"),
        save));
    text.setAttribute("aria-describedby", "w-hint");
    text.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!text.value.trim()) { result.replaceChildren(errorBox("Write something first.")); return; }
      save.disabled = true;
      result.replaceChildren(h("p", { class: "muted", text: "Saving…" }));
      try {
        const res = await api("POST", "/api/reflections", {
          text: text.value, tags: tagsOf(tags.value), private: priv.checked });
        await showMirrorback(res, result);
        localStorage.removeItem(DRAFT_KEY);
        text.value = ""; tags.value = ""; priv.checked = false;
      } catch (err) {
        result.replaceChildren(errorBox(err));
      } finally {
        save.disabled = false;
      }
    });
    const today = h("section", { "aria-labelledby": "otd-h" });
    setMain("Write", form, result, today);
    onThisDay(today, true);
  }

  async function showMirrorback(res, where) {
    let box = null, crisis = null, saved = null;
    const notices = h("div");
    for await (const msg of ndjson(res)) {
      if (msg.saved) {
        saved = msg.saved; crisis = msg.crisis;
        const link = h("a", { href: `#/r/${saved.id}`, text: "Open it in the journal" });
        if (crisis) {
          box = h("div", { class: "crisis streaming", id: "mirrorback", role: "alert" });
          where.replaceChildren(h("section", { class: "crisis-wrap" },
            h("h2", { text: crisis === "crisis" ? "You matter. Help is there right now."
              : "Checking in with you" }), box), notices, h("p", {}, link));
        } else {
          box = h("div", { class: "mirrorback streaming", id: "mirrorback" });
          where.replaceChildren(h("p", { class: "muted", text: "Saved. Your mirrorback:" }),
            box, notices, h("p", {}, link));
        }
      } else if (msg.chunk !== undefined && box) {
        box.append(document.createTextNode(msg.chunk));
      } else if (msg.notice) {
        notices.append(h("p", { class: "notice", text: msg.notice }));
      } else if (msg.done && box) {
        box.classList.remove("streaming");
        box.textContent = msg.done.mirrorback ? msg.done.mirrorback.text : box.textContent;
        box.setAttribute("data-done", "1");
        announce("Mirrorback ready");
      }
    }
    return saved;
  }

  async function onThisDay(where, quietWhenEmpty) {
    try {
      const data = await get("/api/on-this-day");
      if (!data.items.length) {
        where.replaceChildren(quietWhenEmpty ? "" : h("p", { class: "muted", id: "otd-h",
          text: "Nothing written on this day in earlier years." }));
        return;
      }
      where.replaceChildren(h("h2", { id: "otd-h", text: "On this day" }),
        entryList(data.items, []));
    } catch (err) { where.replaceChildren(errorBox(err)); }
  }

  // ---------------------------------------------------------------- Journal

  function entryItem(r, words) {
    const star = h("button", { class: "star", type: "button", "aria-pressed": String(r.starred),
      "aria-label": r.starred ? "Unstar" : "Star", title: "Star", text: r.starred ? "★" : "☆",
      "data-star": r.id });
    star.addEventListener("click", async () => {
      const now = star.getAttribute("aria-pressed") !== "true";
      try {
        await send("PUT", `/api/reflections/${r.id}/star`, { starred: now });
        star.setAttribute("aria-pressed", String(now));
        star.setAttribute("aria-label", now ? "Unstar" : "Star");
        star.textContent = now ? "★" : "☆";
        announce(now ? "Starred" : "Unstarred");
      } catch (err) { announce(err.message); }
    });
    return h("li", { class: "entry", "data-id": r.id }, star,
      h("div", { class: "body" },
        h("time", { datetime: r.created_at, text: fmtDate(r.created_at, true) }),
        r.private ? h("span", { class: "badge", text: "private" }) : null,
        h("div", {}, h("a", { href: `#/r/${r.id}` }, ...highlighted(r.snippet, words))),
        r.tags.length ? h("ul", { class: "tags", "aria-label": "tags" },
          r.tags.map((t) => h("li", { class: "tag", text: `#${t}` }))) : null));
  }

  function entryList(items, words, by) {
    const out = [];
    let current = null, list = null;
    for (const r of items) {
      const key = by === "month" ? r.day.slice(0, 7) : r.day;
      if (key !== current) {
        current = key;
        const label = by === "month"
          ? new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric" })
            .format(new Date(`${key}-01T12:00:00`))
          : fmtDate(`${key}T12:00:00`);
        out.push(h("h2", { class: "day", text: label }));
        list = h("ul", { class: "entries" });
        out.push(list);
      }
      list.append(entryItem(r, words));
    }
    return h("div", { class: "timeline" }, out);
  }

  async function viewJournal() {
    const q = state.query;
    const field = (id, label, input) => h("div", { class: "field" },
      h("label", { for: id, text: label }), input);
    const search = h("input", { id: "j-q", type: "search", value: q.get("q") || "",
      placeholder: "words or #tag" });
    const from = h("input", { id: "j-from", type: "date", value: q.get("from") || "" });
    const to = h("input", { id: "j-to", type: "date", value: q.get("to") || "" });
    const tag = h("select", { id: "j-tag" }, h("option", { value: "", text: "any tag" }));
    const starred = h("input", { id: "j-starred", type: "checkbox" });
    starred.checked = q.get("starred") === "1";
    const priv = h("select", { id: "j-private" },
      h("option", { value: "", text: "all" }), h("option", { value: "only", text: "private only" }),
      h("option", { value: "none", text: "shared only" }));
    priv.value = q.get("private") || "";
    const by = h("select", { id: "j-by" }, h("option", { value: "day", text: "day" }),
      h("option", { value: "month", text: "month" }));
    by.value = q.get("by") || "day";
    const form = h("form", { class: "panel", role: "search", id: "j-form" },
      h("div", { class: "row" },
        field("j-q", "Search", search), field("j-from", "From", from), field("j-to", "To", to),
        field("j-tag", "Tag", tag), field("j-private", "Private", priv),
        field("j-by", "Group by", by),
        h("label", { class: "inline", for: "j-starred" }, starred, "Starred only"),
        h("button", { type: "submit", text: "Show" })));
    const results = h("section", { id: "j-results", "aria-live": "polite" });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = new URLSearchParams();
      if (search.value.trim()) p.set("q", search.value.trim());
      if (from.value) p.set("from", from.value);
      if (to.value) p.set("to", to.value);
      if (tag.value) p.set("tag", tag.value);
      if (starred.checked) p.set("starred", "1");
      if (priv.value) p.set("private", priv.value);
      if (by.value !== "day") p.set("by", by.value);
      location.hash = `#/journal?${p}`;
    });
    setMain("Journal", form, results);
    const p = new URLSearchParams(q);
    p.delete("by");
    let words = (q.get("q") || "").split(/\s+/).filter(Boolean);
    const tagWords = words.filter((w) => w.startsWith("#") && w.length > 1);
    if (tagWords.length) {
      words = words.filter((w) => !tagWords.includes(w));
      p.set("q", words.join(" "));
      tagWords.forEach((t) => p.append("tag", t.slice(1)));
    }
    try {
      const data = await get(`/api/journal?${p}`);
      for (const t of data.tags) tag.append(h("option", { value: t.tag, text: `#${t.tag} (${t.count})` }));
      tag.value = q.get("tag") || "";
      const page = data.page;
      const nav = h("nav", { class: "pager", "aria-label": "Pages" },
        page > 1 ? h("a", { class: "button quiet", href: pageLink(page - 1), text: "← Newer" }) : null,
        h("span", { text: `Page ${page} of ${data.pages}` }),
        page < data.pages ? h("a", { class: "button quiet", href: pageLink(page + 1), text: "Older →" }) : null);
      const summary = h("p", { class: "muted", id: "j-count",
        text: data.everything === 0 ? "No reflections yet: write one on the Write page."
          : `${data.total} of ${data.everything} reflections` });
      results.replaceChildren(summary, entryList(data.items, words, by.value),
        data.pages > 1 ? nav : "");
    } catch (err) { results.replaceChildren(errorBox(err)); }
  }
  function pageLink(n) {
    const p = new URLSearchParams(state.query);
    p.set("page", String(n));
    return `#/journal?${p}`;
  }

  // ---------------------------------------------------------------- one reflection

  async function viewReflection(rid) {
    setMain("Reflection", h("p", { class: "muted", text: "Loading…" }));
    let r;
    try { r = await get(`/api/reflections/${encodeURIComponent(rid)}`); } catch (err) {
      setMain("Reflection", errorBox(err)); return;
    }
    const textBox = h("div", { class: "text", id: "r-text", text: r.text });
    const star = entryItem(r, []).querySelector(".star");
    const edit = h("button", { type: "button", class: "quiet", id: "r-edit", text: "Edit" });
    const del = h("button", { type: "button", class: "danger", id: "r-delete", text: "Delete…" });
    const editArea = h("div");
    const mb = r.mirrorback ? h("div", { class: "mirrorback", text: r.mirrorback.text }) : null;
    edit.addEventListener("click", () => {
      const area = h("textarea", { id: "r-edit-text", class: "editor" });
      area.value = r.text;
      const tags = h("input", { id: "r-edit-tags", type: "text" });
      tags.value = r.tags.join(" ");
      const save = h("button", { type: "submit", text: "Save changes" });
      const cancel = h("button", { type: "button", class: "quiet", text: "Cancel" });
      const form = h("form", { class: "panel" },
        h("label", { for: "r-edit-text", text: "Text" }), area,
        h("label", { for: "r-edit-tags", text: "Tags" }), tags,
        h("p", { class: "hint", text: "When the text changes, what the engine found in the old words stops counting." }),
        h("div", { class: "row" }, save, cancel));
      cancel.addEventListener("click", () => { editArea.replaceChildren(); edit.focus(); });
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          await send("PATCH", `/api/reflections/${r.id}`, { text: area.value, tags: tagsOf(tags.value) });
          announce("Saved");
          viewReflection(r.id);
        } catch (err) { form.append(errorBox(err)); }
      });
      editArea.replaceChildren(form);
      area.focus();
    });
    del.addEventListener("click", () => confirmDelete(r));
    const found = r.found.length ? h("ul", { class: "tags", id: "r-found" },
      r.found.map((f) => h("li", { class: "tag", text: f.poles ? `${f.kind}: ${f.poles.join(" vs ")}`
        : `${f.kind}: ${f.label}` }))) : h("p", { class: "muted", text: "Nothing yet." });
    const related = r.related.length ? entryList(r.related, [])
      : h("p", { class: "muted", text: "No related reflections yet." });
    setMain("Reflection",
      h("article", { class: "panel" },
        h("p", {}, h("time", { datetime: r.created_at, text: fmtDate(r.created_at, true) }), " ",
          r.private ? h("span", { class: "badge", text: "private" }) : null,
          r.edited_at ? h("span", { class: "muted", text: ` · edited ${fmtDate(r.edited_at, true)}` }) : null),
        textBox,
        r.tags.length ? h("ul", { class: "tags" }, r.tags.map((t) => h("li", { class: "tag", text: `#${t}` }))) : null,
        h("div", { class: "row" }, star, edit, del)),
      editArea,
      h("h2", { text: "Mirrorback" }), mb || h("p", { class: "muted", text: "None." }),
      h("h2", { text: "What the engine found" }), found,
      h("h2", { text: "Related reflections" }), related);
  }

  async function confirmDelete(r) {
    let preview;
    try { preview = await get(`/api/reflections/${r.id}/delete-preview`); } catch (err) {
      announce(err.message); return;
    }
    const yes = h("button", { class: "danger", type: "button", id: "r-delete-yes", text: "Delete for good" });
    const no = h("button", { class: "quiet", type: "button", text: "Keep it" });
    const dialog = h("dialog", { id: "r-delete-dialog", "aria-labelledby": "del-h" },
      h("h2", { id: "del-h", text: "Delete this reflection?" }),
      h("p", { text: `${preview.words} words written ${fmtDate(preview.created_at, true)}. This removes:` }),
      h("ul", {}, preview.removes.map((x) => h("li", { text: x }))),
      h("div", { class: "row" }, yes, no));
    document.body.append(dialog);
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    yes.addEventListener("click", async () => {
      try {
        await send("DELETE", `/api/reflections/${r.id}`);
        dialog.close();
        announce("Deleted");
        location.hash = "#/journal";
      } catch (err) { dialog.append(errorBox(err)); }
    });
    dialog.showModal();
    no.focus();
  }

  // ---------------------------------------------------------------- Understand

  const TABS = [["tensions", "Tensions"], ["patterns", "Patterns & loops"], ["mood", "Mood"],
    ["graph", "Identity graph"], ["evolution", "Evolution notes"], ["today", "On this day"]];

  async function viewUnderstand() {
    const current = state.query.get("tab") || "tensions";
    const panel = h("section", { id: "u-panel", role: "tabpanel", tabindex: "0",
      "aria-labelledby": `tab-${current}` });
    const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Views" },
      TABS.map(([key, label]) => {
        const b = h("button", { type: "button", role: "tab", id: `tab-${key}`,
          "aria-selected": String(key === current), tabindex: key === current ? "0" : "-1",
          "aria-controls": "u-panel", text: label });
        b.addEventListener("click", () => { location.hash = `#/understand?tab=${key}`; });
        b.addEventListener("keydown", (ev) => {
          const i = TABS.findIndex(([k]) => k === key);
          let j = null;
          if (ev.key === "ArrowRight") j = (i + 1) % TABS.length;
          if (ev.key === "ArrowLeft") j = (i + TABS.length - 1) % TABS.length;
          if (j !== null) { ev.preventDefault(); state.focusTab = true; location.hash = `#/understand?tab=${TABS[j][0]}`; }
        });
        return b;
      }));
    setMain("Understand", tabs, panel);
    const fn = { tensions: tensionsTab, patterns: patternsTab, mood: moodTab, graph: graphTab,
      evolution: evolutionTab, today: onThisDay }[current] || tensionsTab;
    panel.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
    try { await fn(panel); } catch (err) { panel.replaceChildren(errorBox(err)); }
    if (state.focusTab) document.getElementById(`tab-${current}`).focus();
  }

  function barChart(values, title, cls) {
    const w = 520, hgt = 90, pad = 18;
    const max = Math.max(1, ...values);
    const bw = (w - pad) / values.length;
    const svg = s("svg", { class: "chart " + (cls || ""), viewBox: `0 0 ${w} ${hgt + 16}`, role: "img",
      "aria-label": title });
    svg.append(s("title", { text: title }));
    svg.append(s("line", { class: "axis", x1: pad, y1: hgt, x2: w, y2: hgt }));
    svg.append(s("text", { x: 0, y: 10, text: String(max) }));
    values.forEach((v, i) => {
      const bh = (v / max) * (hgt - 8);
      svg.append(s("rect", { class: "bar", x: pad + i * bw + 1, y: hgt - bh, width: Math.max(1, bw - 2),
        height: bh }, s("title", { text: `${values.length - i - 1} weeks ago: ${v}` })));
    });
    svg.append(s("text", { x: pad, y: hgt + 14, text: `${values.length} weeks ago` }));
    svg.append(s("text", { x: w - 40, y: hgt + 14, text: "this week" }));
    return svg;
  }

  function evidenceList(evidence) {
    return evidence.map((e) => h("blockquote", { class: "quote" },
      e.quote || e.text || "", e.rid ? h("span", {}, " ", h("a", { href: `#/r/${e.rid}`, text: "open" })) : null));
  }

  async function tensionsTab(panel) {
    const data = await get("/api/tensions");
    if (!data.tensions.length) {
      panel.replaceChildren(h("p", { class: "muted", text: "No tensions yet: they appear when two things pull at you in your reflections." }));
      return;
    }
    panel.replaceChildren(h("p", { class: "hint", text: "Each chart: how many reflections touched the tension each week (bars), with its status and mean intensity (1–5)." }),
      ...data.tensions.map((t) => h("article", { class: "panel tension" },
        h("h2", { text: `${t.poles[0]} vs ${t.poles[1]}` }),
        h("p", {}, h("span", { class: "badge", text: t.status }),
          ` intensity ${t.intensity} (max ${t.max_intensity}) · ${t.occurrences} times · came back ${t.episodes}×`),
        barChart(t.weekly, `${t.poles[0]} vs ${t.poles[1]}: reflections per week`, "tension-chart"),
        h("details", {}, h("summary", { text: "Evidence" }), evidenceList(t.evidence)))));
  }

  async function patternsTab(panel) {
    const data = await get("/api/patterns");
    const loops = data.loops.map((lp) => h("article", { class: "panel" },
      h("h3", { text: lp.label }), h("p", { class: "muted", text: `${lp.count} times, ${lp.first_seen.slice(0, 10)} → ${lp.last_seen.slice(0, 10)}` }),
      h("details", {}, h("summary", { text: "Evidence" }), evidenceList(lp.evidence))));
    const pats = data.patterns.map((p) => h("li", {},
      h("span", { class: "badge", text: p.kind }), ` ${p.label} — ${p.count} times `,
      h("details", {}, h("summary", { text: "Evidence" }), evidenceList(p.evidence))));
    panel.replaceChildren(h("h2", { text: "Loops" }),
      loops.length ? h("div", {}, loops) : h("p", { class: "muted", text: "No loops yet." }),
      h("h2", { text: "Recurring" }),
      pats.length ? h("ul", { id: "u-patterns" }, pats) : h("p", { class: "muted", text: "No patterns yet." }));
  }

  async function moodTab(panel) {
    const data = await get("/api/mood");
    const weeks = data.weeks;
    const w = 560, hgt = 200, pad = 30;
    const svg = s("svg", { class: "chart mood-chart", viewBox: `0 0 ${w} ${hgt + 20}`, role: "img",
      "aria-label": "Mood per week, from low to high" });
    svg.append(s("title", { text: "Mood per week" }));
    const y = (v) => pad / 2 + (1 - (v + 1) / 2) * (hgt - pad);
    const x = (i) => pad + (i * (w - pad - 10)) / Math.max(1, weeks.length - 1);
    svg.append(s("line", { class: "axis", x1: pad, y1: y(0), x2: w, y2: y(0) }));
    svg.append(s("text", { x: 0, y: y(1) + 4, text: "high" }));
    svg.append(s("text", { x: 0, y: y(-1) + 4, text: "low" }));
    let d = "";
    weeks.forEach((wk, i) => {
      if (wk.valence === null) return;
      d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(wk.valence).toFixed(1)}`;
      svg.append(s("circle", { class: wk.at_risk ? "risk" : "dot", cx: x(i), cy: y(wk.valence), r: 4 },
        s("title", { text: `${wk.week}: ${wk.valence.toFixed(2)}, ${wk.reflections} reflections${wk.feelings.length ? ", " + wk.feelings.join(", ") : ""}` })));
    });
    if (d) svg.prepend(s("path", { class: "line", d }));
    if (weeks.length) {
      svg.append(s("text", { x: pad, y: hgt + 16, text: weeks[0].start }));
      svg.append(s("text", { x: w - 70, y: hgt + 16, text: weeks[weeks.length - 1].start }));
    }
    const rows = weeks.filter((wk) => wk.reflections).map((wk) => h("tr", {},
      h("td", { text: wk.week }), h("td", { text: wk.valence.toFixed(2) }),
      h("td", { text: String(wk.reflections) }), h("td", { text: wk.feelings.join(", ") })));
    panel.replaceChildren(svg,
      rows.length ? h("details", {}, h("summary", { text: "As a table" }),
        h("table", {}, h("thead", {}, h("tr", {}, ["Week", "Mood", "Reflections", "Feelings"].map((c) => h("th", { scope: "col", text: c })))),
          h("tbody", {}, rows))) : h("p", { class: "muted", text: "No mood yet: each reflection adds to it." }));
  }

  function typeClass(type) {
    if (type === "person") return "t-person";
    if (type === "value") return "t-value";
    if (type === "theme") return "t-theme";
    if (type === "role") return "t-role";
    return "t-other";
  }

  function layout(nodes, edges, w, hgt) {
    // A small deterministic force layout: same graph, same picture.
    const pos = new Map();
    nodes.forEach((n, i) => {
      const a = (i / Math.max(1, nodes.length)) * Math.PI * 2;
      const r = 0.35 * Math.min(w, hgt) * (0.6 + 0.4 * ((i * 7) % 5) / 5);
      pos.set(n.id, { x: w / 2 + r * Math.cos(a), y: hgt / 2 + r * Math.sin(a), vx: 0, vy: 0 });
    });
    const k = Math.sqrt((w * hgt) / Math.max(1, nodes.length)) * 0.6;
    for (let it = 0; it < 180; it++) {
      for (const a of nodes) {
        const pa = pos.get(a.id);
        for (const b of nodes) {
          if (a === b) continue;
          const pb = pos.get(b.id);
          const dx = pa.x - pb.x, dy = pa.y - pb.y;
          const d2 = Math.max(dx * dx + dy * dy, 1);
          pa.vx += (dx / d2) * k * k * 0.05; pa.vy += (dy / d2) * k * k * 0.05;
        }
      }
      for (const e of edges) {
        const pa = pos.get(e.a), pb = pos.get(e.b);
        if (!pa || !pb) continue;
        const dx = pb.x - pa.x, dy = pb.y - pa.y;
        const d = Math.sqrt(dx * dx + dy * dy) || 1;
        const f = ((d - k) / d) * 0.05;
        pa.vx += dx * f; pa.vy += dy * f; pb.vx -= dx * f; pb.vy -= dy * f;
      }
      for (const p of pos.values()) {
        p.vx += (w / 2 - p.x) * 0.01; p.vy += (hgt / 2 - p.y) * 0.01;
        p.x = Math.min(w - 30, Math.max(30, p.x + Math.max(-20, Math.min(20, p.vx))));
        p.y = Math.min(hgt - 20, Math.max(20, p.y + Math.max(-20, Math.min(20, p.vy))));
        p.vx *= 0.5; p.vy *= 0.5;
      }
    }
    return pos;
  }

  async function graphTab(panel) {
    const data = await get("/api/graph");
    const nodes = data.nodes.slice(0, 60);
    const ids = new Set(nodes.map((n) => n.id));
    const edges = data.edges.filter((e) => ids.has(e.a) && ids.has(e.b));
    if (!nodes.length) {
      panel.replaceChildren(h("p", { class: "muted", text: "Your identity graph grows as you write: people, values, themes and roles." }));
      return;
    }
    const w = 800, hgt = 480;
    const pos = layout(nodes, edges, w, hgt);
    const side = h("aside", { class: "panel", id: "g-side", "aria-live": "polite" },
      h("p", { class: "muted", text: "Choose a node (click, or Tab then Enter) to see its evidence, rename or merge it." }));
    const svg = s("svg", { class: "graph", id: "g-svg", viewBox: `0 0 ${w} ${hgt}`, role: "group",
      "aria-label": `Identity graph: ${nodes.length} nodes` });
    for (const e of edges) {
      const a = pos.get(e.a), b = pos.get(e.b);
      svg.append(s("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, "stroke-width": Math.min(6, 1 + e.weight / 2) }));
    }
    const maxW = Math.max(1, ...nodes.map((n) => n.weight));
    for (const n of nodes) {
      const p = pos.get(n.id);
      const g = s("g", { class: "node", tabindex: "0", role: "button", "data-node": n.id,
        "aria-label": `${n.type} ${n.label}, weight ${n.weight}` },
        s("circle", { class: typeClass(n.type), cx: p.x, cy: p.y, r: 6 + 10 * (n.weight / maxW) }),
        s("text", { x: p.x + 10, y: p.y + 4, text: n.label }));
      const choose = () => {
        svg.querySelectorAll(".node.selected").forEach((x) => x.classList.remove("selected"));
        g.classList.add("selected");
        showNode(n, nodes, side);
      };
      g.addEventListener("click", choose);
      g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); choose(); } });
      svg.append(g);
    }
    const legend = h("ul", { class: "legend", "aria-label": "Legend" },
      [["person", "people"], ["value", "values"], ["theme", "themes"], ["role", "roles"], ["other", "other"]].map(([t, label]) =>
        h("li", {}, s("svg", { width: 14, height: 14, "aria-hidden": "true" }, s("circle", { class: typeClass(t), cx: 7, cy: 7, r: 6 })), ` ${label}`)));
    panel.replaceChildren(legend, svg, side);
  }

  function relabel(id, text) {
    for (const g of document.querySelectorAll("svg.graph .node")) {
      if (g.getAttribute("data-node") === id) g.querySelector("text").textContent = text;
    }
  }

  function showNode(n, nodes, side) {
    const label = h("input", { id: "g-label", type: "text", value: n.label });
    const into = h("select", { id: "g-into" }, h("option", { value: "", text: "choose…" }),
      nodes.filter((m) => m.id !== n.id).map((m) => h("option", { value: m.id, text: `${m.label} (${m.type})` })));
    const rename = h("form", {}, h("label", { for: "g-label", text: "Rename" }),
      h("div", { class: "row" }, label, h("button", { type: "submit", text: "Rename" })));
    const merge = h("form", {}, h("label", { for: "g-into", text: "Merge into" }),
      h("div", { class: "row" }, into, h("button", { type: "submit", text: "Merge" })));
    const undoBox = h("div");
    rename.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const before = n.label;
      try {
        await send("POST", "/api/graph/edit", { op: "rename", node: n.id, label: label.value });
        relabel(n.id, label.value);
        announce(`Renamed to ${label.value}`);
        const undo = h("button", { type: "button", class: "quiet", id: "g-undo", text: `Undo: call it “${before}” again` });
        undo.addEventListener("click", async () => {
          await send("POST", "/api/graph/edit", { op: "rename", node: n.id, label: before });
          relabel(n.id, before);
          label.value = before;
          undoBox.replaceChildren();
          announce("Undone");
        });
        undoBox.replaceChildren(undo);
        undo.focus();
      } catch (err) { undoBox.replaceChildren(errorBox(err)); }
    });
    merge.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!into.value) return;
      try {
        await send("POST", "/api/graph/edit", { op: "merge", node: n.id, into: into.value });
        announce("Merged");
        rerender();
      } catch (err) { undoBox.replaceChildren(errorBox(err)); }
    });
    side.replaceChildren(h("h2", { text: n.label }),
      h("p", { class: "muted", text: `${n.type} · weight ${n.weight} · ${n.first_seen.slice(0, 10)} → ${n.last_seen.slice(0, 10)}` }),
      evidenceList(n.evidence), rename, merge, undoBox);
  }

  async function evolutionTab(panel) {
    const data = await get("/api/evolution");
    const write = h("button", { type: "button", id: "e-new", text: "Write a note for the last 30 days" });
    write.addEventListener("click", async () => {
      write.disabled = true;
      try { await send("POST", "/api/evolution", { days: 30 }); rerender(); } catch (err) { panel.append(errorBox(err)); }
    });
    panel.replaceChildren(h("p", {}, write),
      data.notes.length ? h("div", {}, data.notes.map((n) => h("article", { class: "panel" },
        h("h2", { text: `${n.since.slice(0, 10)} → ${n.until.slice(0, 10)}` }),
        h("div", { class: "text", text: n.text }),
        n.cites.length ? h("p", {}, "Cites: ", n.cites.map((c, i) => [i ? ", " : "", h("a", { href: `#/r/${c}`, text: c.slice(0, 8) })])) : null)))
        : h("p", { class: "muted", text: "No evolution notes yet." }));
  }

  // ---------------------------------------------------------------- Devices, Commons, Data

  function pairingView(p, where) {
    if (!p || p.state === "idle") { where.replaceChildren(); return; }
    if (p.state === "waiting") {
      where.replaceChildren(
        h("p", {}, "On the other device, open Mirror's Devices page and join with this code (or run ",
          h("code", { text: `mirror join ${p.code} --address ${p.address}` }), "):"),
        h("p", { class: "code", id: "p-code", text: p.code }),
        h("p", { class: "muted", id: "p-address", text: `Address: ${p.address} · waiting for a device…` }));
    } else if (p.state === "joined") {
      where.replaceChildren(h("p", { id: "p-joined", role: "status", text: `${p.name} joined (${p.device_id}).` }),
        (p.attempts || []).length ? h("ul", {}, p.attempts.map((a) => h("li", { text: a }))) : "");
    } else {
      where.replaceChildren(h("p", { class: "error", id: "p-failed", text: p.failure || "Pairing failed." }));
    }
  }

  function when(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString() : "never";
  }

  function devicesTable(data) {
    const rows = data.devices.map((d) => {
      const remove = d.this_device || !d.active ? "" : h("button", { type: "button", class: "danger",
        "data-remove": d.device_id, text: "Remove…" });
      if (remove) remove.addEventListener("click", async () => {
        if (!window.confirm(`Remove ${d.name || d.device_id}? It will read nothing written after this.`)) return;
        try { await send("DELETE", `/api/devices/${encodeURIComponent(d.device_id)}`); announce("Removed"); refreshDevices(); } catch (err) { announce(err.message); }
      });
      return h("tr", { "data-device": d.device_id },
        h("td", { text: d.name || "unnamed" }), h("td", {}, h("code", { text: d.device_id.slice(0, 12) })),
        h("td", { text: d.this_device ? "this device" : d.active ? "active" : "removed" }),
        h("td", { text: d.this_device ? "—" : when(d.last_seen) }), h("td", {}, remove));
    });
    return h("table", { id: "d-devices" },
      h("caption", { class: "visually-hidden", text: "Devices" }),
      h("thead", {}, h("tr", {}, ["Name", "Id", "Status", "Last seen", "Action"].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, rows));
  }

  function syncList(data) {
    const sync = data.sync;
    return h("ul", { id: "d-sync" },
      h("li", { text: sync.enabled ? "Sync is on." : "Sync is off (mirror serve, or the mode settings)." }),
      h("li", { text: sync.serving ? `mirror serve is running${sync.listening ? " on " + sync.listening : ""}.` : "mirror serve is not running." }),
      h("li", { text: `${sync.pending} change(s) waiting to be sent; ${sync.peers.length} peer(s) seen.` }),
      h("li", { text: `${sync.shared_documents.length} document(s) shared with your devices.` }));
  }

  async function viewDevices() {
    const data = await get("/api/devices");
    const table = devicesTable(data);
    const status = syncList(data);
    const share = h("input", { type: "checkbox", id: "d-share" });
    share.checked = data.journal_shared;
    share.addEventListener("change", async () => {
      try { await send("PUT", "/api/share/journal", { shared: share.checked }); announce(share.checked ? "Journal shared with your devices" : "Journal kept on this device"); } catch (err) { announce(err.message); share.checked = !share.checked; }
    });
    const pairOut = h("div", { id: "p-out", "aria-live": "polite" });
    const pair = h("button", { type: "button", id: "p-start", text: "Show a pairing code" });
    pair.addEventListener("click", async () => {
      pair.disabled = true;
      try { pairingView(await send("POST", "/api/pairing", {}), pairOut); } catch (err) { pairOut.replaceChildren(errorBox(err)); } finally { pair.disabled = false; }
    });
    state.onPairing = (msg) => { pairingView(msg, pairOut); if (msg.state === "joined") refreshDevices(); };
    pairingView(data.pairing, pairOut);
    const code = h("input", { id: "j-code", type: "text", autocomplete: "off", spellcheck: "false" });
    const address = h("input", { id: "j-address", type: "text", placeholder: "192.168.1.20:41234 (optional on a LAN)" });
    const name = h("input", { id: "j-name", type: "text", placeholder: "laptop" });
    const joinOut = h("div", { id: "j-out", "aria-live": "polite" });
    const join = h("form", { class: "panel", id: "j-join" }, h("h2", { text: "Join another device's group" }),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "j-code", text: "Pairing code" }), code),
        h("div", { class: "field" }, h("label", { for: "j-address", text: "Address" }), address),
        h("div", { class: "field" }, h("label", { for: "j-name", text: "Name for this device" }), name),
        h("button", { type: "submit", text: "Join" })), joinOut);
    join.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      joinOut.replaceChildren(h("p", { class: "muted", text: "Joining…" }));
      try {
        const r = await send("POST", "/api/join", { code: code.value, address: address.value, name: name.value });
        joinOut.replaceChildren(h("p", { id: "j-joined", role: "status", text: `Joined: this device is now in a group of ${r.devices} devices.` }));
        refreshDevices();
      } catch (err) { joinOut.replaceChildren(errorBox(err)); }
    });
    setMain("Devices",
      h("section", { class: "panel" }, h("h2", { text: "Your devices" }), table),
      h("section", { class: "panel" }, h("h2", { text: "Sync" }), status,
        h("label", { class: "inline", for: "d-share" }, share, "Share my journal with my devices (private reflections always stay here)")),
      h("section", { class: "panel" }, h("h2", { text: "Pair a new device" }), pair, pairOut),
      join);
  }

  async function refreshDevices() {
    if (state.view !== "devices") return;
    try {
      const data = await get("/api/devices");
      document.getElementById("d-devices")?.replaceWith(devicesTable(data));
      document.getElementById("d-sync")?.replaceWith(syncList(data));
    } catch (err) { announce(err.message); }
  }

  async function viewCommons() {
    const data = await get("/api/commons");
    const threads = data.items.filter((i) => i.kind === "post" || i.kind === "insight");
    const replies = (id) => data.items.filter((i) => i.thread === id);
    const list = threads.length ? h("div", { id: "c-threads" }, threads.map((t) => h("article", { class: "panel" },
      h("h3", { text: t.title || "(untitled)" }),
      h("p", { class: "muted", text: `${t.kind} · ${fmtDate(t.created_at, true)} · author ${t.author.slice(0, 12)}` }),
      h("div", { class: "text", text: t.body }),
      replies(t.doc_id).length ? h("ul", {}, replies(t.doc_id).map((c) => h("li", { text: c.kind === "reaction" ? `reaction: ${c.reaction}` : c.body }))) : "")))
      : h("p", { class: "muted", text: "No Commons threads on this device yet. Add a Commons server and read it: mirror commons add URL, then mirror commons read." });
    const published = data.published.length ? h("table", { id: "c-published" },
      h("caption", { class: "visually-hidden", text: "What you published" }),
      h("thead", {}, h("tr", {}, ["What", "Summary", "Server", "Published", "State"].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, data.published.map((e) => h("tr", {},
        h("td", { text: e.what }), h("td", { text: e.summary }), h("td", { text: e.server }),
        h("td", { text: e.published_at }),
        h("td", { text: e.withdrawn_at ? `withdrawn ${e.withdrawn_at}` : e.sent_at ? `sent ${e.sent_at}` : "not sent yet" })))))
      : h("p", { class: "muted", text: "You have published nothing." });
    setMain("Commons",
      h("p", { class: "hint", text: "The public Commons, as this device last read it. Posting, publishing an insight (with its exact preview) and withdrawing are done with mirror commons post, mirror publish and mirror unpublish." }),
      h("section", {}, h("h2", { text: "Threads" }), list),
      h("section", { class: "panel" }, h("h2", { text: "What you published" }), published));
  }

  async function viewData() {
    const settings = await get("/api/settings");
    const mode = h("select", { id: "d-mode" }, settings.mirror_modes.map((m) => h("option", { value: m, text: m })));
    mode.value = settings.mirror_mode;
    const modeForm = h("form", { class: "panel" }, h("h2", { text: "Mode and engine" }),
      h("label", { for: "d-mode", text: "Mirror mode" }),
      h("div", { class: "row" }, mode, h("button", { type: "submit", text: "Set mode" })),
      h("p", {}, `Engine: ${settings.engine_mode}`, settings.model ? ` (${settings.model})` : ""));
    const modeOut = h("p", { role: "status" });
    modeForm.append(modeOut);
    modeForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { await send("PUT", "/api/settings/mode", { mode: mode.value }); modeOut.textContent = `Mode set to ${mode.value}.`; } catch (err) { modeOut.replaceChildren(errorBox(err)); }
    });
    const test = h("button", { type: "button", id: "d-test", text: "Test the model" });
    const testOut = h("div", { id: "d-test-out", "aria-live": "polite" });
    test.addEventListener("click", async () => {
      test.disabled = true;
      testOut.replaceChildren(h("p", { class: "muted", text: "Asking the engine…" }));
      try {
        const r = await send("POST", "/api/settings/test-model", {});
        testOut.replaceChildren(h("p", { text: r.ok ? `It answered (${r.engine}${r.model ? ", " + r.model : ""}):` : "It did not answer as it should:" }),
          h("div", { class: "mirrorback", text: r.reply }), r.notices.map((n) => h("p", { class: "notice", text: n })));
      } catch (err) { testOut.replaceChildren(errorBox(err)); } finally { test.disabled = false; }
    });
    modeForm.append(h("div", { class: "row" }, test), testOut);
    setMain("Data",
      h("section", { class: "panel" }, h("h2", { text: "Export everything" }),
        h("p", { class: "hint", text: "A file with all your reflections, mirrorbacks and what the engine found." }),
        h("div", { class: "row" },
          h("a", { class: "button", id: "d-export-json", href: "/api/export?format=json", download: "mirror-export.json", text: "Export JSON" }),
          h("a", { class: "button quiet", id: "d-export-md", href: "/api/export?format=markdown", download: "mirror-export.md", text: "Export Markdown" }))),
      importPanel(),
      modeForm);
  }

  function importPanel() {
    const file = h("input", { type: "file", id: "d-import-file" });
    const fmt = h("select", { id: "d-import-format" }, ["auto", "mirror", "jrnl", "dayone", "markdown"].map((f) => h("option", { value: f, text: f })));
    const priv = h("input", { type: "checkbox", id: "d-import-private" });
    const out = h("div", { id: "d-import-out", "aria-live": "polite" });
    const form = h("form", { class: "panel", id: "d-import" }, h("h2", { text: "Import" }),
      h("p", { class: "hint", text: "From jrnl, Day One, Markdown or a Mirror export. You see what would be imported before anything is." }),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "d-import-file", text: "File" }), file),
        h("div", { class: "field" }, h("label", { for: "d-import-format", text: "Format" }), fmt),
        h("label", { class: "inline", for: "d-import-private" }, priv, "Import as private"),
        h("button", { type: "submit", text: "Preview" })), out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const chosen = file.files[0];
      if (!chosen) { out.replaceChildren(errorBox("Choose a file first.")); return; }
      out.replaceChildren(h("p", { class: "muted", text: "Reading…" }));
      try {
        const res = await fetch(`/api/import/preview?name=${encodeURIComponent(chosen.name)}&format=${fmt.value}`, {
          method: "POST", credentials: "same-origin", body: chosen,
          headers: { "X-Mirror-CSRF": state.csrf, "Content-Type": "application/octet-stream" } });
        const r = await res.json();
        if (!res.ok) throw new Error(r.error || String(res.status));
        const go = h("button", { type: "button", id: "d-import-go", text: `Import ${r.imported} reflections` });
        go.disabled = r.imported === 0;
        go.addEventListener("click", async () => {
          try {
            const done = await send("POST", "/api/import", { upload: r.upload, format: fmt.value, private: priv.checked });
            out.replaceChildren(h("p", { id: "d-import-done", role: "status", text: `Imported ${done.imported} reflections (${done.already_present} were here already).` }));
          } catch (err) { out.replaceChildren(errorBox(err)); }
        });
        out.replaceChildren(h("p", { id: "d-import-preview", text: `${r.format}: ${r.imported} new reflection(s), ${r.already_present} already here, ${r.skipped.length} skipped.` }),
          r.skipped.length ? h("ul", {}, r.skipped.slice(0, 20).map((x) => h("li", { text: `${x.where}: ${x.reason}` }))) : "", go);
      } catch (err) { out.replaceChildren(errorBox(err)); }
    });
    return form;
  }

  // ---------------------------------------------------------------- routing, push

  let rendering = 0;
  function rerender() { route(); }

  async function route() {
    const raw = location.hash.replace(/^#\/?/, "") || "write";
    const [path, qs] = raw.split("?");
    const parts = path.split("/");
    state.view = parts[0];
    state.query = new URLSearchParams(qs || "");
    for (const a of document.querySelectorAll("[data-nav]")) {
      const on = a.getAttribute("data-nav") === state.view || (state.view === "r" && a.getAttribute("data-nav") === "journal");
      if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    const token = ++rendering;
    document.body.setAttribute("data-busy", "1");
    const views = { write: viewWrite, journal: viewJournal, understand: viewUnderstand,
      devices: viewDevices, commons: viewCommons, data: viewData };
    try {
      if (state.view === "r" && parts[1]) await viewReflection(parts[1]);
      else await (views[state.view] || viewWrite)();
    } catch (err) {
      if (token === rendering) setMain("Mirror", errorBox(err));
    }
    if (token !== rendering) return;  // a newer render is under way
    document.body.setAttribute("data-view", state.view);
    document.body.setAttribute("data-hash", location.hash);
    document.body.setAttribute("data-rendered", String(token));
    document.body.removeAttribute("data-busy");
  }

  function onChanged(kinds) {
    // Views that show what changed fetch it again; the Write page keeps its editor.
    const journal = kinds.includes("journal");
    if (state.view === "journal" && journal) rerender();
    else if (state.view === "understand" && state.query.get("tab") !== "graph") rerender();
    // the graph keeps its layout and the chosen node; its own edits update it in place
    else if (state.view === "r" && journal) rerender();
    else if (state.view === "devices") refreshDevices();
    else if (state.view === "write" && journal) {
      const otd = main().querySelector("[aria-labelledby='otd-h']");
      if (otd) onThisDay(otd, true);
    }
    if (journal) document.getElementById("live-status").textContent = "Journal updated";
  }

  function listen() {
    const live = document.getElementById("live-status");
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => { live.textContent = "Live"; document.body.setAttribute("data-live", "1"); });
    es.addEventListener("error", () => { live.textContent = "Reconnecting…"; document.body.removeAttribute("data-live"); });
    es.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "changed") onChanged(msg.kinds);
      else if (msg.type === "resync") onChanged(["journal"]);
      else if (msg.type === "pairing" && state.onPairing) state.onPairing(msg);
    });
  }

  async function start() {
    try {
      state.csrf = (await get("/api/session")).csrf;
    } catch (err) {
      setMain("Mirror", errorBox(err));
      return;
    }
    window.addEventListener("hashchange", () => {
      route().then(() => {
        if (state.focusTab) state.focusTab = false;
        else main().focus({ preventScroll: true });
      });
    });
    window.addEventListener("mirror:rerender", () => { route(); });
    listen();
    await route();
  }
  start();
})();
