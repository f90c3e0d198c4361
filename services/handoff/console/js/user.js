// Users: look a user up; see and switch each agent's routing, its history and transcript.

import { get, getIfChanged, paths, put } from "./api.js";

const POLL_MS = 2000; // the live transcript's polling period
import {
  ago, causeText, clear, errorBox, h, liveCountdown, loading, modeBadge, openDialog, plural,
  toast, transcriptView, when,
} from "./ui.js";

const RECENT = "handoff.recent-users";

function recent() {
  try {
    return JSON.parse(sessionStorage.getItem(RECENT) || "[]");
  } catch {
    return [];
  }
}

function remember(channel, ext) {
  const list = recent().filter((u) => !(u.channel === channel && u.ext === ext));
  list.unshift({ channel, ext });
  sessionStorage.setItem(RECENT, JSON.stringify(list.slice(0, 8)));
}

export function userHref(channel, ext) {
  return `#/users/${encodeURIComponent(channel)}/${encodeURIComponent(ext)}`;
}

export function lookupPage(session) {
  const channel = h("input", { id: "lookup-channel", name: "channel", value: "web", required: true, autocomplete: "off" });
  const ext = h("input", { id: "lookup-user", name: "external_id", required: true, autocomplete: "off", placeholder: "e.g. alice or +33612345678" });
  const form = h(
    "form",
    {
      class: "card lookup",
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = userHref(channel.value.trim(), ext.value.trim());
      },
    },
    h("h1", {}, "Find a user"),
    h("p", { class: "muted" }, "See which agents are talking to a user, who has the conversation, and why."),
    h("div", { class: "row" },
      h("div", { class: "field narrow" }, h("label", { for: "lookup-channel" }, "Channel"), channel),
      h("div", { class: "field grow" }, h("label", { for: "lookup-user" }, "User id on the channel"), ext),
      h("div", { class: "field end" }, h("button", { type: "submit", class: "button primary" }, "Open")),
    ),
  );
  const list = recent();
  const recentBox = list.length
    ? h("section", { class: "card" }, h("h2", {}, "Recently opened"),
        h("ul", { class: "link-list" }, list.map((u) => h("li", {}, h("a", { href: userHref(u.channel, u.ext) }, h("span", { class: "muted" }, `${u.channel} / `), u.ext)))))
    : null;
  setTimeout(() => ext.focus());
  return { title: "Users", el: h("div", { class: "page narrow-page" }, form, userList(session), recentBox) };
}

// The tenant's users, one row per user and agent, searched on the server as one types.
function userList(session) {
  const search = h("input", { id: "user-search", type: "search", autocomplete: "off", placeholder: "Part of a user id" });
  const body = h("tbody");
  const table = h("table", { id: "user-list", class: "history users" },
    h("caption", { class: "sr-only" }, "Users of this tenant, per agent"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "User"), h("th", { scope: "col" }, "Agent"), h("th", { scope: "col" }, "Mode"), h("th", { scope: "col" }, "Last activity"))),
    body);
  const status = h("div", { class: "list-status" }, loading());
  const more = h("button", { type: "button", class: "button secondary more", hidden: true }, "More users");
  let query = 0; // answers of an older search are dropped
  let cursor = null;

  async function page(fresh) {
    const mine = fresh ? ++query : query;
    const params = new URLSearchParams({ limit: "50" });
    if (search.value.trim()) params.set("q", search.value.trim());
    if (!fresh && cursor) params.set("cursor", cursor);
    let answer;
    try {
      answer = await get(`${paths.users(session.tenant)}?${params}`);
    } catch (err) {
      if (mine === query) clear(status, errorBox(err));
      return;
    }
    if (mine !== query) return;
    if (fresh) body.replaceChildren();
    for (const u of answer.items) {
      body.append(h("tr", { dataset: { user: u.external_id, agent: u.agent_id } },
        h("td", {}, h("a", { href: userHref(u.channel, u.external_id) }, u.external_id), h("span", { class: "muted" }, ` on ${u.channel}`)),
        h("td", {}, u.agent_id),
        h("td", {}, modeBadge(u.mode)),
        h("td", { class: "nowrap" }, u.last_activity_at ? h("time", { datetime: u.last_activity_at, title: when(u.last_activity_at) }, ago(u.last_activity_at)) : "—")));
    }
    cursor = answer.next_cursor;
    more.hidden = !cursor;
    clear(status, body.children.length ? null : h("p", { class: "empty" }, search.value.trim() ? `No user id contains “${search.value.trim()}”.` : "No users yet: they appear with their first message."));
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => page(true), 200);
  });
  more.addEventListener("click", () => page(false));
  page(true);
  return h("section", { class: "card" },
    h("h2", {}, "All users"),
    h("div", { class: "field" }, h("label", { for: "user-search" }, "Search users"), search),
    table, status, more);
}

export function userPage(session, channel, ext) {
  const cards = h("div", { class: "cards" }, loading());
  const detail = h("div", { class: "detail" });
  const state = { selected: null, user: null };
  const canWrite = session.can_write;

  const el = h(
    "div",
    { class: "page" },
    h("nav", { class: "crumbs" }, h("a", { href: "#/users" }, "Users"), " / ", `${channel}`),
    h("div", { class: "page-head" },
      h("h1", {}, ext, h("span", { class: "muted channel" }, ` on ${channel}`)),
      h("button", { type: "button", class: "button secondary", onclick: () => load() }, "Refresh")),
    cards,
    detail,
  );

  async function load(withDetail = true) {
    try {
      state.user = await get(paths.user(session.tenant, channel, ext));
    } catch (err) {
      clear(cards, err.code === "user_not_found"
        ? h("div", { class: "card empty-state" }, h("h2", {}, "No such user"), h("p", { class: "muted" }, `Nobody with id “${ext}” on ${channel} has talked to an agent of ${session.tenant} yet.`))
        : errorBox(err));
      clear(detail);
      return;
    }
    remember(channel, ext);
    const agents = state.user.agents;
    if (!state.selected || !agents.some((a) => a.agent_id === state.selected)) {
      state.selected = (agents.find((a) => a.mode === "human") || agents[0]).agent_id;
    }
    clear(cards, agents.map(card));
    if (withDetail) await loadDetail();
  }

  function card(a) {
    const selected = a.agent_id === state.selected;
    const expires = a.mode === "human"
      ? a.expires_at
        ? h("div", { class: "expiry" }, "Back to AI in ", liveCountdown(a.expires_at, () => setTimeout(load, 1500)), h("span", { class: "muted" }, " unless the user writes"))
        : h("div", { class: "expiry muted" }, "No idle timeout: stays with a human until switched back")
      : null;
    const actions = canWrite
      ? h("div", { class: "card-actions" },
          a.mode === "ai"
            ? h("button", {
                type: "button",
                class: "button primary",
                "data-action": "to-human",
                disabled: !a.handoff.enabled,
                title: a.handoff.enabled ? "" : a.handoff.published_version ? "Handoff is off in the published version" : "The agent has no published version",
                onclick: (e) => { e.stopPropagation(); switchMode(a, "human"); },
              }, "Switch to Human")
            : h("button", { type: "button", class: "button secondary", "data-action": "to-ai", onclick: (e) => { e.stopPropagation(); switchMode(a, "ai"); } }, "Switch to AI"),
          a.mode === "ai" && !a.handoff.enabled
            ? h("span", { class: "hint" }, a.handoff.published_version ? "Handoff is off for this agent" : "Agent not published")
            : null)
      : null;
    return h(
      "article",
      {
        class: `card routing ${selected ? "selected" : ""} mode-${a.mode}-card`,
        dataset: { agent: a.agent_id, mode: a.mode },
        tabindex: 0,
        onclick: () => select(a.agent_id),
        onkeydown: (e) => { if (e.key === "Enter") select(a.agent_id); },
      },
      h("header", { class: "routing-head" },
        h("a", { class: "agent-name", href: `#/agents/${encodeURIComponent(a.agent_id)}`, onclick: (e) => e.stopPropagation() }, a.agent_id),
        modeBadge(a.mode)),
      h("p", { class: "cause" }, causeText(a), a.changed_at ? h("span", { class: "muted" }, " · ", h("time", { datetime: a.changed_at, title: when(a.changed_at) }, ago(a.changed_at))) : null),
      a.reason ? h("blockquote", { class: "reason" }, a.reason) : null,
      expires,
      h("footer", { class: "routing-foot" }, actions, h("span", { class: "version muted", title: "The state version: it counts the changes of this user's routing with this agent; not an agent version" }, `State version ${a.state_version}`)),
    );
  }

  function select(agent) {
    state.selected = agent;
    for (const c of cards.querySelectorAll(".routing")) c.classList.toggle("selected", c.dataset.agent === agent);
    loadDetail();
  }

  async function switchMode(a, mode) {
    const toHuman = mode === "human";
    const reason = h("textarea", { name: "reason", id: "switch-reason", rows: 3, maxlength: session.limits.reason_chars, required: true, placeholder: toHuman ? "e.g. The user asked for a refund over the limit." : "e.g. Resolved on the phone." });
    const idle = h("input", { name: "idle", id: "switch-idle", type: "number", min: session.limits.switch_idle_timeout_minutes.min, max: session.limits.switch_idle_timeout_minutes.max, placeholder: "agent default" });
    const body = h("div", {},
      h("p", { class: "muted" }, toHuman
        ? `${a.agent_id} goes silent for ${ext}; the user is told a teammate has it, and the desk gets a ticket.`
        : `${a.agent_id} answers ${ext} again from the next message.`),
      h("label", { for: "switch-reason" }, "Reason ", h("span", { class: "muted" }, "(kept in the history)")),
      reason,
      toHuman ? h("div", { class: "field" }, h("label", { for: "switch-idle" }, "Idle timeout, minutes ", h("span", { class: "muted" }, "(empty: agent default, 0: none)")), idle) : null,
    );
    const result = await openDialog({
      title: toHuman ? `Switch ${a.agent_id} to Human` : `Switch ${a.agent_id} back to AI`,
      body,
      confirm: toHuman ? "Switch to Human" : "Switch to AI",
      submit: async (data) => {
        const payload = { mode, reason: String(data.get("reason") || "").trim() };
        if (toHuman && data.get("idle") !== "" && data.get("idle") !== null) payload.idle_timeout_minutes = Number(data.get("idle"));
        return put(`${paths.interaction(session.tenant, channel, ext, a.agent_id)}/mode`, payload, { "Idempotency-Key": crypto.randomUUID() });
      },
    });
    if (result) {
      toast(`${a.agent_id} is now on ${result.mode === "human" ? "Human" : "AI"}.`, "success");
      state.selected = a.agent_id;
      await load();
    }
  }

  async function loadDetail() {
    const agent = state.selected;
    if (!agent) return clear(detail);
    const base = paths.interaction(session.tenant, channel, ext, agent);
    const historyBody = h("div", {}, loading());
    const transcriptBody = h("div", {}, loading());
    clear(detail,
      h("section", { class: "card panel", id: "history" }, h("h2", {}, "History ", h("span", { class: "muted" }, `· ${agent}`)), historyBody),
      h("section", { class: "card panel", id: "transcript" }, h("h2", {}, "Transcript ", h("span", { class: "muted" }, `· ${agent}`)), transcriptBody));
    loadHistory(`${base}/history?limit=20`, historyBody, true);
    live = { agent, etag: null, body: transcriptBody, history: historyBody };
    await refreshTranscript();
  }

  // The transcript is live: polled with its ETag (a 304 while no turn arrived). A new turn
  // may come with a new mode (a handoff's notice, a return's), so the cards reload with it.
  let live = null;
  async function refreshTranscript() {
    const mine = live;
    if (!mine) return;
    const base = paths.interaction(session.tenant, channel, ext, mine.agent);
    let answer;
    try {
      answer = await getIfChanged(`${base}/transcript?limit=100`, mine.etag);
    } catch (err) {
      if (live === mine && !mine.etag) clear(mine.body, err.code === "interaction_not_found" ? h("p", { class: "empty" }, "Nothing recorded.") : errorBox(err));
      return;
    }
    if (!answer || live !== mine) return;
    const first = mine.etag === null;
    mine.etag = answer.etag;
    const page = answer.data;
    const old = mine.body.querySelector(".transcript");
    const atBottom = !old || old.scrollTop + old.clientHeight >= old.scrollHeight - 30;
    clear(mine.body,
      page.next ? h("p", { class: "muted small" }, "Showing the latest 100 turns.") : null,
      transcriptView(page.items));
    const list = mine.body.querySelector(".transcript");
    if (list && atBottom) list.scrollTop = list.scrollHeight;
    if (!first) {
      await load(false);
      loadHistory(`${base}/history?limit=20`, mine.history, true);
    }
  }
  const poller = setInterval(() => { if (!document.hidden) refreshTranscript(); }, POLL_MS);

  async function loadHistory(url, into, fresh) {
    let page;
    try {
      page = await get(url);
    } catch (err) {
      clear(into, err.code === "interaction_not_found" ? h("p", { class: "empty" }, "No changes yet.") : errorBox(err));
      return;
    }
    let table = into.querySelector("tbody");
    if (fresh) {
      if (!page.items.length) return clear(into, h("p", { class: "empty" }, "No changes yet: on AI since the start."));
      table = h("tbody");
      clear(into, h("table", { class: "history" },
        h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Change"), h("th", {}, "By"), h("th", {}, "Reason"))),
        table));
    }
    into.querySelector(".more")?.remove();
    for (const c of page.items) {
      table.append(h("tr", { dataset: { version: c.state_version } },
        h("td", { class: "nowrap" }, h("time", { datetime: c.changed_at, title: when(c.changed_at) }, when(c.changed_at))),
        h("td", { class: "nowrap" }, modeBadge(c.from_mode), " → ", modeBadge(c.to_mode)),
        h("td", {}, h("div", {}, c.actor), h("div", { class: "muted small" }, c.cause)),
        h("td", { class: "reason-cell" }, c.reason)));
    }
    if (page.next) {
      into.append(h("button", { type: "button", class: "button secondary more", onclick: () => loadHistory(page.next, into, false) }, "Older changes"));
    } else if (!fresh || page.items.length) {
      into.append(h("p", { class: "muted small more" }, plural(table.children.length, "change")));
    }
  }

  load();
  return { title: `${ext} on ${channel}`, el, cleanup: () => { clearInterval(poller); live = null; } };
}
