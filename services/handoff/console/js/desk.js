// The desk: open tickets and new user messages live, the conversation, replies, and the
// ticket's owner and actions (claim, assign, transfer, release, resolve; R15), with a warning
// a minute before an idle return and an Extend button (R19).
//
// An inbox: views Mine / Unassigned / All and per queue, the longest-waiting user first, the
// last message as the preview, unread counts per conversation (kept in this browser's
// localStorage, keyed by tenant and teammate: they survive a reload, not a change of
// browser), the count in the tab title and the nav, the open conversation in the URL
// (#/desk?c=<interaction>) and a draft per conversation (localStorage, same keys). Sending to
// a user another teammate owns asks first.
//
// The reply box (compose.js): "Omar is replying…" from the other teammates' heartbeats, and
// sending while one of them composes (or has just replied) asks first; files attached to a
// reply; canned replies by a picker or `/`. Opt-in sound and desktop alerts (notify.js).
// Keys: J / K the next / previous conversation, R the reply box (Escape leaves it), C claim,
// E resolve (or return to AI) after a confirmation, Ctrl/Cmd+K search (search.js).

import { get, paths, post, put, stream } from "./api.js";
import { cannedPicker, cannedReplies, fileTray, presence, presenceWarning, slashCommands } from "./compose.js";
import { alerts } from "./notify.js";
import { openSearch } from "./search.js";
import {
  ago, clear, errorBox, h, liveCountdown, loading, openDialog, said, toast, transcriptView, turnView, when,
} from "./ui.js";
import { userHref } from "./user.js";

const keyOf = (ids) => `${ids.tenant_id}:${ids.agent_id}:${ids.user.channel}:${ids.user.external_id ?? ""}`;

const readJson = (key, fallback) => {
  try {
    return JSON.parse(localStorage.getItem(key) || "null") ?? fallback;
  } catch (e) {
    return fallback;
  }
};
const writeJson = (key, value) => {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    /* storage full or disabled: the desk still works, without memory */
  }
};

// The desk's unread total on the nav's Desk link, on every page: the desk keeps it in this
// browser's localStorage (as the counts), so the other pages show what the desk last counted.
export const deskCountKey = (session) => `handoff:desk:${session.tenant}:${session.sub}:unread-total`;
export function showDeskCount(session) {
  const nav = document.querySelector("a[data-nav=desk]");
  if (!nav) return;
  const total = Number(readJson(deskCountKey(session), 0)) || 0;
  let badge = nav.querySelector(".nav-count");
  if (!badge) nav.append((badge = h("span", { class: "nav-count" })));
  badge.textContent = total ? String(total) : "";
  badge.hidden = !total;
  badge.setAttribute("aria-label", `${total} unread`);
}

function urlConversation() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q).get("c");
}

export function deskPage(session) {
  const canWrite = session.can_write;
  const mineKey = `handoff:desk:${session.tenant}:${session.sub}`;
  const unread = readJson(`${mineKey}:unread`, {}); // interaction key -> unread messages
  const draftKey = (key) => `${mineKey}:draft:${key}`;
  let view = "all"; // all | mine | unassigned | queue:<name>
  const previews = new Map(); // interaction key -> the last turn's text
  const tickets = new Map(); // interaction key -> ticket
  const owned = new Map(); // interaction key -> its open ticket (TicketView: queue, owner)
  let queueNames = [];
  const sentByMe = new Set(); // event ids of this page's replies
  let selected = null;
  const abort = new AbortController();
  const canned = cannedReplies(session);
  const bell = alerts();
  let composer = null; // the open conversation's presence (compose.js)
  const trays = new Map(); // interaction key -> its reply's attached files (compose.js)

  const live = h("span", { class: "live connecting", id: "desk-live" }, "Connecting…");
  const views = h("div", { class: "desk-views", id: "desk-views", role: "tablist", "aria-label": "Views" });
  // New tickets are announced to screen readers here (the list itself is not live: it redraws).
  const announce = h("p", { class: "sr-only", id: "desk-announce", "aria-live": "polite" });
  const list = h("ul", { class: "ticket-list", id: "tickets" });
  const count = h("span", { class: "count" });
  const pane = h("section", { class: "conversation card", id: "conversation" });
  const el = h("div", { class: "page desk-page" },
    h("div", { class: "desk" },
      h("aside", { class: "queue card" },
        h("header", { class: "queue-head" }, h("h1", {}, "Desk ", count), live),
        bell.controls,
        views,
        announce,
        list),
      pane));

  function setLive(state, text) {
    live.className = `live ${state}`;
    live.textContent = text;
  }

  // Tickets --------------------------------------------------------------------------------

  async function loadTickets() {
    const asked = Date.now();
    try {
      const page = await get(`${paths.desk(session.tenant)}/tickets`);
      const seen = new Set();
      for (const t of page.items) {
        seen.add(t.interaction);
        tickets.set(t.interaction, { ...tickets.get(t.interaction), ...t });
      }
      // Gone from the list: back on AI. Keep what the stream brought after we asked.
      for (const [key, t] of [...tickets]) if (!seen.has(key) && !(t.liveAt > asked)) tickets.delete(key);
      renderList();
      showExpiry();
      loadOwners();
      loadPreviews(page.items);
      const wanted = urlConversation();
      if (!selected && wanted && tickets.has(wanted)) select(wanted);
      else if (!selected && page.items.length) select(sorted()[0].interaction);
      else if (!selected) renderPane();
    } catch (err) {
      clear(list, h("li", {}, errorBox(err)));
    }
  }

  // The longest-waiting user first.
  const sorted = () => [...tickets.values()].sort((a, b) => (a.opened_at < b.opened_at ? -1 : 1));

  function inView(t, name) {
    const tv = owned.get(t.interaction);
    if (name === "mine") return Boolean(tv && tv.assignee === session.sub);
    if (name === "unassigned") return !tv || !tv.assignee;
    if (name.startsWith("queue:")) return Boolean(tv && tv.queue === name.slice(6));
    return true;
  }

  async function loadPreviews(items) {
    await Promise.all(items.map(async (t) => {
      const base = paths.interaction(session.tenant, t.channel, t.external_id, t.agent_id);
      try {
        const page = await get(`${base}/transcript?limit=1`);
        const last = page.items[page.items.length - 1];
        if (last && !previews.has(t.interaction)) previews.set(t.interaction, preview(last));
      } catch (err) {
        /* the preview is optional: the reason shows instead */
      }
    }));
    renderList();
  }

  const preview = (turn) => turn.text || (turn.attachments.length ? `📎 ${turn.attachments[0].name}` : "");

  function saveUnread() {
    for (const key of Object.keys(unread)) if (!unread[key] || !tickets.has(key)) delete unread[key];
    writeJson(`${mineKey}:unread`, unread);
  }

  function showCounts() {
    const total = [...tickets.keys()].reduce((n, key) => n + (unread[key] || 0), 0);
    document.title = `${total ? `(${total}) ` : ""}Desk · Handoff`;
    writeJson(deskCountKey(session), total);
    showDeskCount(session);
  }

  function renderViews() {
    const all = [...tickets.values()];
    const names = ["all", "mine", "unassigned", ...queueNames.map((q) => `queue:${q}`)];
    const label = (n) => (n === "all" ? "All" : n === "mine" ? "Mine" : n === "unassigned" ? "Unassigned" : n.slice(6));
    clear(views, names.map((n) => h("button", {
      type: "button",
      role: "tab",
      class: `view ${n === view ? "active" : ""}`,
      "aria-selected": n === view ? "true" : "false",
      dataset: { view: n },
      onclick: () => {
        view = n;
        renderList();
      },
    }, label(n), h("span", { class: "view-count" }, String(all.filter((t) => inView(t, n)).length)))));
  }

  function renderList() {
    renderViews();
    showCounts();
    const items = sorted().filter((t) => inView(t, view));
    count.textContent = tickets.size ? `(${tickets.size})` : "";
    // The list is redrawn: a focused item keeps the focus (else it would fall to <body>).
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset.interaction : null;
    if (!items.length) {
      const none = tickets.size ? "No conversation in this view." : "No conversation is waiting for a person. New handoffs appear here as they happen.";
      clear(list, h("li", { class: "empty" }, none));
      return;
    }
    clear(list, items.map((t) => h("li", {},
      h("button", {
        type: "button",
        class: `ticket ${t.interaction === selected ? "selected" : ""} ${unread[t.interaction] ? "unread" : ""} ${t.fresh ? "fresh" : ""}`,
        dataset: { interaction: t.interaction },
        onclick: () => select(t.interaction),
      },
      h("div", { class: "ticket-top" },
        h("span", { class: "ticket-user" }, t.external_id),
        h("span", { class: "ticket-agent" }, t.agent_id),
        h("time", { class: "ticket-time", datetime: t.opened_at, title: `waiting since ${when(t.opened_at)}` }, ago(t.opened_at))),
      h("div", { class: "ticket-preview" }, previews.get(t.interaction) ?? (t.state.reason || "—")),
      ownerLine(owned.get(t.interaction)),
      unread[t.interaction] ? h("span", { class: "unread-count", "aria-label": `${unread[t.interaction]} unread` }, String(unread[t.interaction])) : null))));
    for (const t of items) t.fresh = false;
    if (focused) focusItem(focused);
  }

  const focusItem = (key) => list.querySelector(`.ticket[data-interaction="${CSS.escape(key)}"]`)?.focus();

  function ownerLine(tv) {
    if (!tv) return null;
    const mine = tv.assignee === session.sub;
    return h("div", { class: "ticket-meta" },
      h("span", { class: "pill", dataset: { queue: tv.queue } }, tv.queue),
      h("span", { class: `owner ${mine ? "mine" : ""}` }, tv.assignee ? `Owner: ${mine ? "you" : tv.assignee_name || tv.assignee}` : "Waiting for someone"));
  }

  // Who owns what: the open tickets of every queue (the tickets API), by interaction. The
  // queues are the configured ones and those the desk's agents' published versions name.
  let ownersKnown = false; // the owners were loaded once: until then nobody's ownership is known
  async function loadOwners() {
    try {
      const agents = [...new Set([...tickets.values()].map((t) => t.agent_id))];
      const [queues, ...views] = await Promise.all([
        get(paths.queues(session.tenant)),
        ...agents.map((a) => get(paths.agent(session.tenant, a)).catch(() => null)),
      ]);
      const named = views.filter(Boolean).flatMap((view) => {
        const published = view.versions.find((v) => v.published);
        return published ? published.handoff.queues : [];
      });
      queueNames = [...new Set([...queues.items.map((q) => q.queue), ...named])].sort();
      const pages = await Promise.all(queueNames.map((q) => get(`${paths.queue(session.tenant, q)}/tickets`)));
      owned.clear();
      for (const page of pages) for (const tv of page.items) owned.set(tv.interaction, tv);
      ownersKnown = true;
    } catch (err) {
      if (err.status === 401) return;
    }
    renderList();
    renderTicketBox();
  }

  let ownersTimer = null;
  function soonLoadOwners() { // one reload for a burst of changes
    if (ownersTimer) return;
    ownersTimer = setTimeout(() => {
      ownersTimer = null;
      loadOwners();
    }, 200);
  }

  function select(key) {
    selected = key;
    delete unread[key];
    saveUnread();
    // In the URL without a hashchange (which would rebuild the page): a reload returns here.
    history.replaceState(null, "", `#/desk?c=${encodeURIComponent(key)}`);
    renderList();
    renderPane();
  }

  // The conversation ----------------------------------------------------------------------

  let turnsBox = null;
  let expiryBox = null;
  let ticketBox = null;
  let warnBox = null;
  let paneTicket = null; // the desk ticket the pane shows, and its interaction's API path
  let paneBase = null;

  function expiry(iso) {
    return iso ? [" · back to AI in ", liveCountdown(iso)] : " · no idle timeout";
  }

  // The idle expiry is the server's (R19): a teammate's reply or claim moves it a whole
  // timeout ahead. Within one state version it only moves forward, so an older answer that
  // arrives late never takes it back.
  function followExpiry(key, state) {
    const t = tickets.get(key);
    if (!t || !state) return;
    const was = t.state;
    const older = was && was.state_version === state.state_version && was.expires_at && state.expires_at
      && new Date(state.expires_at) < new Date(was.expires_at);
    if (!older) t.state = state;
    showExpiry();
  }

  // The open conversation's countdown and warning, from its ticket's state.
  function showExpiry() {
    const t = paneTicket && tickets.get(paneTicket.interaction);
    if (!t || !expiryBox) return;
    const shown = expiryBox.querySelector(".countdown");
    if ((shown ? shown.dataset.until : null) !== (t.state.expires_at || null)) clear(expiryBox, expiry(t.state.expires_at));
    renderWarning();
  }

  // The routing states again, after a claim or another teammate's reply (both move the
  // expiry on the server): the desk's tickets, which carry them. One read for a burst.
  let routingTimer = null;
  function soonLoadRouting() {
    if (routingTimer) return;
    routingTimer = setTimeout(async () => {
      routingTimer = null;
      try {
        const page = await get(`${paths.desk(session.tenant)}/tickets`);
        for (const item of page.items) followExpiry(item.interaction, item.state);
      } catch (err) {
        /* the next change or reconnect reads them again */
      }
    }, 200);
  }

  async function renderPane(closedBy) {
    const t = tickets.get(selected);
    if (!t && !closedBy) {
      clear(pane, h("div", { class: "empty-state" }, h("h2", {}, "Nothing selected"), h("p", { class: "muted" }, "Pick a conversation on the left.")));
      return;
    }
    const ticket = t || closedBy.ticket;
    const base = paths.interaction(session.tenant, ticket.channel, ticket.external_id, ticket.agent_id);
    if (composer) composer.close(composer.key === ticket.interaction); // redrawn: still typing
    composer = null;
    turnsBox = h("div", { class: "turns" }, loading());
    const s = ticket.state;
    const reply = h("textarea", { id: "reply-text", name: "text", rows: 3, placeholder: `Reply to ${ticket.external_id}…  (Ctrl+Enter sends)`, "aria-label": `Reply to ${ticket.external_id}` });
    reply.value = localStorage.getItem(draftKey(ticket.interaction)) || "";
    reply.addEventListener("input", () => {
      if (reply.value) localStorage.setItem(draftKey(ticket.interaction), reply.value);
      else localStorage.removeItem(draftKey(ticket.interaction));
    });
    const sendButton = h("button", { type: "submit", class: "button primary", id: "reply-send" }, "Send");
    const here = closedBy ? null : presence(session, base, reply, canWrite);
    if (here) here.key = ticket.interaction;
    composer = here;
    // A conversation's attached files stay with it while the pane is redrawn (as its draft).
    if (!trays.has(ticket.interaction)) trays.set(ticket.interaction, fileTray(session));
    const files = trays.get(ticket.interaction);
    const slash = slashCommands(reply, canned);
    const form = canWrite && !closedBy
      ? h("form", {
          class: "reply",
          onsubmit: async (e) => {
            e.preventDefault();
            const text = reply.value.trim();
            const attachments = files.files();
            if (!text && !attachments.length) return;
            if (!(await mayAnswer(ticket, here))) return reply.focus();
            sendButton.disabled = true;
            try {
              const sent = await post(`${base}/messages`, { text, attachments });
              sentByMe.add(sent.event_id);
              followExpiry(ticket.interaction, { ...ticket.state, expires_at: sent.expires_at }); // R19: moved
              here.sent();
              reply.value = "";
              files.clear();
              localStorage.removeItem(draftKey(ticket.interaction));
              previews.set(ticket.interaction, text || preview({ attachments }));
              renderList();
              appendTurn({ event_id: sent.event_id, role: "human", text, attachments, at: sent.sent_at });
            } catch (err) {
              toast(said(err), "error");
            } finally {
              sendButton.disabled = false;
              reply.focus();
            }
          },
        },
        here.el,
        reply,
        slash.listbox,
        slash.status,
        files.tray,
        files.error,
        h("div", { class: "reply-actions" },
          h("span", { class: "reply-tools" }, files.controls, cannedPicker(reply, canned)),
          h("span", { class: "hint" }, `Sent as ${session.sub}, from the ${ticket.agent_id} conversation. Type / for canned replies.`),
          sendButton))
      : null;
    const titleEl = h("h2", { id: "conv-title", tabindex: "-1" }, h("a", { href: userHref(ticket.channel, ticket.external_id) }, ticket.external_id), h("span", { class: "muted" }, ` on ${ticket.channel} · ${ticket.agent_id}`));
    paneTicket = closedBy ? null : ticket;
    paneBase = base;
    reply.addEventListener("keydown", (e) => {
      if (e.defaultPrevented) return; // the canned replies' list took it
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form?.requestSubmit();
      if (e.key === "Escape") titleEl.focus(); // out of the box: the desk's keys work again
    });
    clear(pane,
      h("header", { class: "conv-head" },
        h("div", {},
          titleEl,
          h("p", { class: "muted small" },
            `Handed over by ${s.actor || s.cause} · ${ago(ticket.opened_at)}`,
            (expiryBox = h("span", {}, closedBy ? null : expiry(s.expires_at))))),
        (ticketBox = h("div", { class: "ticket-box", id: "ticket-box" }))),
      closedBy ? h("div", { class: "alert alert-info", id: "closed-note", tabindex: "-1" }, closedBy.text) : null,
      (warnBox = h("div", { id: "idle-warning" })),
      s.reason ? h("blockquote", { class: "reason" }, s.reason) : null,
      turnsBox,
      form);
    renderTicketBox();
    try {
      const page = await get(`${base}/transcript?limit=100`);
      clear(turnsBox, transcriptView(page.items));
      scrollDown();
    } catch (err) {
      clear(turnsBox, errorBox(err));
    }
  }

  // The ticket's assignee owns the conversation: anyone else is asked before answering, so
  // two teammates do not answer one user at once.
  // Likewise when another teammate is composing a reply to that user or has just sent one.
  async function mayAnswer(ticket, here) {
    if (!ownersKnown) await loadOwners(); // a send right after the page opened still asks
    const tv = owned.get(ticket.interaction);
    const owner = tv && tv.assignee && tv.assignee !== session.sub ? tv.assignee_name || tv.assignee : null;
    const busy = presenceWarning(here ? await here.refresh() : [], ticket.external_id);
    if (!owner && !busy) return true;
    const ok = await openDialog({
      title: owner ? `${owner} owns this conversation` : busy,
      body: h("div", {},
        owner ? h("p", {}, `${owner} is answering ${ticket.external_id}.`) : null,
        owner && busy ? h("p", {}, `${busy}.`) : null,
        h("p", {}, "Send your reply as well?")),
      confirm: "Send anyway",
    });
    return Boolean(ok);
  }

  // The ticket: owner, queue and actions ------------------------------------------------------

  let refused = null; // {interaction, text}: why the last ticket action failed, until the next

  function renderTicketBox() {
    if (!ticketBox) return;
    const t = paneTicket;
    if (!t) return void clear(ticketBox);
    const tv = owned.get(t.interaction);
    const message = refused && refused.interaction === t.interaction ? refused.text : null;
    const error = message ? h("div", { class: "alert alert-error", role: "alert", id: "ticket-error" }, message) : null;
    if (!tv) {
      clear(ticketBox,
        canWrite ? h("button", { type: "button", class: "button secondary", id: "return-to-ai", onclick: () => returnToAi(t, paneBase) }, "Return to AI") : null,
        error);
      return;
    }
    const mine = tv.assignee === session.sub;
    const owner = tv.assignee ? (mine ? "you" : tv.assignee_name || tv.assignee) : "nobody yet";
    const act = (name, label, handler, kind = "secondary") =>
      h("button", { type: "button", class: `button small ${kind}`, dataset: { action: name }, onclick: handler }, label);
    clear(ticketBox,
      h("p", { class: "muted small", id: "ticket-owner", dataset: { assignee: tv.assignee || "", queue: tv.queue, status: tv.status } },
        `Queue ${tv.queue} · owner: ${owner}${tv.status === "queued" && tv.position ? ` · position ${tv.position}` : ""}`),
      canWrite
        ? h("div", { class: "ticket-actions" },
            tv.status === "queued" ? act("claim", "Claim", () => quiet(ticketAction(tv, "claim", {})), "primary") : null,
            act("assign", "Assign…", () => assignDialog(tv)),
            act("transfer", "Transfer…", () => transferDialog(tv)),
            tv.assignee ? act("release", "Release", () => quiet(ticketAction(tv, "release", {}))) : null,
            act("resolve", "Resolve…", () => resolveDialog(tv)))
        : null,
      error);
  }

  async function ticketAction(tv, action, body) {
    refused = null;
    try {
      const changed = await post(`${paths.ticket(session.tenant, tv.ticket_id)}/${action}`, body);
      if (changed.status === "queued" || changed.status === "assigned") owned.set(changed.interaction, changed);
      else owned.delete(changed.interaction);
      if (changed.status === "assigned") soonLoadRouting(); // taking the ticket moves the expiry (R19)
      renderList();
      renderTicketBox();
      return changed;
    } catch (err) {
      refused = { interaction: tv.interaction, text: said(err) };
      await loadOwners(); // what changed meanwhile; renders the refusal too
      throw new Error(said(err));
    }
  }

  const quiet = (promise) => promise.catch(() => null); // shown in the ticket box already

  function assignDialog(tv) {
    const who = h("input", { id: "assign-to", name: "assignee", required: true, maxlength: 200, placeholder: "omar" });
    return openDialog({
      title: `Assign ${tv.external_id}'s ticket`,
      body: h("div", {}, h("label", { for: "assign-to" }, "Teammate (their operator id)"), who),
      confirm: "Assign",
      submit: (data) => ticketAction(tv, "assign", { assignee: String(data.get("assignee")).trim() }),
    }).then((r) => r && toast(`Assigned to ${r.assignee_name || r.assignee}.`, "success"));
  }

  function transferDialog(tv) {
    const choice = h("select", { id: "transfer-to", name: "queue" }, queueNames.filter((q) => q !== tv.queue).map((q) => h("option", { value: q }, q)));
    const note = h("textarea", { id: "transfer-note", name: "note", rows: 2, maxlength: 2000, placeholder: "Optional: why" });
    return openDialog({
      title: `Move ${tv.external_id} to another queue`,
      body: h("div", {}, h("p", { class: "muted" }, "The ticket waits again, unassigned, keeping its place by handoff time."),
        h("label", { for: "transfer-to" }, "Queue"), choice, h("label", { for: "transfer-note" }, "Note"), note),
      confirm: "Transfer",
      submit: (data) => {
        const n = String(data.get("note") || "").trim();
        return ticketAction(tv, "transfer", { queue: String(data.get("queue")), ...(n ? { note: n } : {}) });
      },
    }).then((r) => r && toast(`Moved to ${r.queue}.`, "success"));
  }

  function resolveDialog(tv) {
    const note = h("textarea", { id: "resolve-note", name: "note", rows: 3, maxlength: 2000, placeholder: "What was done; the AI reads it when it takes over." });
    const back = h("input", { type: "checkbox", id: "resolve-return", name: "return_to_ai", checked: true });
    return openDialog({
      title: `Resolve ${tv.external_id}'s ticket`,
      body: h("div", {}, h("label", { for: "resolve-note" }, "Resolution note"), note,
        h("label", { class: "check", for: "resolve-return" }, back, "Return to AI")),
      confirm: "Resolve",
      confirmId: "resolve-confirm",
      submit: (data) => {
        const n = String(data.get("note") || "").trim();
        return ticketAction(tv, "resolve", { return_to_ai: data.get("return_to_ai") === "on", ...(n ? { note: n } : {}) });
      },
    }).then((r) => {
      if (!r) return;
      toast(`${tv.external_id}'s ticket is resolved.`, "success");
      if (back.checked) {
        close(tv.interaction, `Resolved by you; ${tv.agent_id} has the conversation again.`, true);
        document.getElementById("closed-note")?.focus(); // what was focused is gone
      }
    });
  }

  // A minute before the idle timeout gives the user back to the AI: a warning, and Extend.
  function renderWarning() {
    if (!warnBox) return;
    const t = paneTicket && tickets.get(paneTicket.interaction);
    const iso = t && t.state.expires_at;
    const left = iso ? new Date(iso).getTime() - Date.now() : Infinity;
    if (!(left > 0 && left <= 60000)) {
      if (warnBox.firstChild) clear(warnBox);
      return;
    }
    if (warnBox.firstChild && warnBox.dataset.until === iso) return; // the countdown inside ticks by itself
    warnBox.dataset.until = iso;
    clear(warnBox, h("div", { class: "alert alert-warn", role: "alert" },
      h("span", {}, "Back to the AI in ", liveCountdown(iso), " unless someone writes."),
      canWrite ? h("button", { type: "button", class: "button small primary", id: "extend", onclick: () => extend(t) }, "Extend") : null));
  }

  async function extend(t) {
    const base = paths.interaction(session.tenant, t.channel, t.external_id, t.agent_id);
    try {
      const r = await post(`${base}/extend`, {});
      followExpiry(t.interaction, { ...t.state, expires_at: r.expires_at });
      toast("Extended: the conversation stays with people.", "success");
    } catch (err) {
      toast(said(err), "error");
    }
  }

  function scrollDown() {
    if (turnsBox) turnsBox.scrollTop = turnsBox.scrollHeight;
  }

  function appendTurn(turn) {
    if (!turnsBox) return;
    if (turnsBox.querySelector(`[data-event-id="${CSS.escape(turn.event_id)}"]`)) return;
    let ol = turnsBox.querySelector(".transcript");
    if (!ol) {
      ol = h("ol", { class: "transcript" });
      clear(turnsBox, ol);
    }
    ol.append(turnView(turn));
    scrollDown();
  }

  async function returnToAi(ticket, base) {
    const reason = h("textarea", { name: "reason", id: "return-reason", rows: 3, maxlength: 280, required: true }, "Resolved by the desk.");
    const result = await openDialog({
      title: `Return ${ticket.external_id} to the AI`,
      body: h("div", {}, h("p", { class: "muted" }, `${ticket.agent_id} answers again from the user's next message.`), h("label", { for: "return-reason" }, "Reason"), reason),
      confirm: "Return to AI",
      submit: (data) => put(`${base}/mode`, { mode: "ai", reason: String(data.get("reason")).trim() }, { "Idempotency-Key": crypto.randomUUID() }),
    });
    if (result) {
      toast(`${ticket.external_id} is back with ${ticket.agent_id}.`, "success");
      close(ticket.interaction, `Back on AI: returned by ${result.actor}. ${result.reason}`, true);
    }
  }

  // The pane of an interaction that left human mode. `mine`: this teammate's own action said
  // so; its words replace the live stream's, which often arrives before the action's answer.
  let lastClosed = null;
  function close(key, text, mine = false) {
    const ticket = tickets.get(key) || (mine && lastClosed?.key === key ? lastClosed.ticket : null);
    if (!ticket) return;
    tickets.delete(key);
    lastClosed = { key, ticket };
    renderList();
    if (selected === key) renderPane({ ticket, text });
  }

  // Live ---------------------------------------------------------------------------------

  function onEvent(name, d) {
    if (name === "ready") {
      setLive("on", "Live");
      return;
    }
    if (name === "ticket") {
      const key = keyOf(d);
      tickets.set(key, {
        interaction: key,
        agent_id: d.agent_id,
        channel: d.user.channel,
        external_id: d.user.external_id,
        opened_at: d.created_at,
        state: { mode: "human", cause: d.cause, actor: d.actor, reason: d.reason, expires_at: d.expires_at, state_version: d.state_version },
        fresh: true,
        liveAt: Date.now(),
      });
      if (key !== selected) {
        unread[key] = (unread[key] || 0) + 1; // a new ticket counts until opened
        saveUnread();
      }
      renderList();
      loadOwners();
      if (!selected) select(key);
      else if (selected === key) renderPane();
      toast(`New handoff: ${d.user.external_id} (${d.agent_id})`);
      bell.tell(`New conversation: ${d.user.external_id}`, d.reason || "", key);
      announce.textContent = `New conversation waiting: ${d.user.external_id}.`;
    } else if (name === "message") {
      const key = keyOf(d.message);
      const t = tickets.get(key);
      if (!t) return void loadTickets();
      t.state.expires_at = d.routing.expires_at;
      previews.set(key, preview(d.message));
      if (key === selected) {
        showExpiry(); // each message moves it
        appendTurn({ event_id: d.message.event_id, role: "user", text: d.message.text, attachments: d.message.attachments, at: d.message.sent_at });
      } else {
        unread[key] = (unread[key] || 0) + 1;
        saveUnread();
      }
      if (key !== selected && inView(t, "mine")) bell.tell(`New message from ${t.external_id}`, preview(d.message), key);
      renderList();
    } else if (name === "mode") {
      if (d.to_mode === "ai") {
        const by = d.cause === "timeout" ? "the idle timeout" : d.actor;
        close(keyOf(d), `Back on AI: returned by ${by}. ${d.reason}`);
      }
    } else if (name === "ticket_changed") {
      soonLoadOwners(); // claimed, assigned, moved, released, resolved: by someone, anywhere
      if (d.status === "assigned") soonLoadRouting(); // a teammate took it: the expiry moved
    } else if (name === "activity") {
      if (d.action !== "desk_reply" || sentByMe.has(d.command_id)) return;
      soonLoadRouting(); // a teammate's reply moved the expiry (R19)
      if (d.target === selected) renderPane();
    }
  }

  async function follow() {
    let backoff = 1000;
    while (!abort.signal.aborted) {
      try {
        await stream(`${paths.desk(session.tenant)}/stream`, (name, data) => {
          if (name === "ready") backoff = 1000;
          onEvent(name, data);
        }, abort.signal);
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err.status === 401) return;
      }
      if (abort.signal.aborted) return;
      setLive("off", "Reconnecting…");
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
      await loadTickets(); // catch up on what happened while disconnected
    }
  }

  // Ctrl/Cmd+K: the desk's conversations (user id, agent, the last message, the handoff
  // reason), then the tenant's other users whose id matches (the users list, GET …/users?q=):
  // a user with an open conversation opens it, any other their user page.
  function openConversation(key) {
    view = "all";
    select(key);
    document.getElementById("conv-title")?.focus();
  }

  async function findConversations(query) {
    const q = query.toLowerCase();
    const here = sorted()
      .filter((t) => [t.external_id, t.agent_id, previews.get(t.interaction), t.state.reason].some((v) => v && v.toLowerCase().includes(q)))
      .slice(0, 20)
      .map((t) => ({
        label: t.external_id,
        detail: `Conversation · ${t.agent_id} · ${previews.get(t.interaction) ?? t.state.reason ?? ""}`,
        choose: () => openConversation(t.interaction),
      }));
    let users = [];
    try {
      users = (await get(`/v1/tenants/${encodeURIComponent(session.tenant)}/users?q=${encodeURIComponent(query)}&limit=20`)).items;
    } catch (err) {
      /* the conversations still answer */
    }
    const shown = new Set(here.map((r) => r.label));
    const others = users
      .filter((u) => !shown.has(u.external_id))
      .map((u) => {
        const key = `${session.tenant}:${u.agent_id}:${u.channel}:${u.external_id}`;
        return {
          label: u.external_id,
          detail: `User · ${u.channel} · ${u.agent_id} · ${u.mode === "human" ? "with people" : "with the AI"}`,
          choose: () => (tickets.has(key) ? openConversation(key) : void (location.hash = userHref(u.channel, u.external_id))),
        };
      });
    return [...here, ...others];
  }

  // Keyboard: J / K the next / previous conversation of the view, R the reply box, C claim,
  // E resolve (or return to AI), each after its confirmation; Ctrl/Cmd+K search.
  function onKey(e) {
    if (document.querySelector("dialog[open]")) return;
    if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "k") {
      e.preventDefault();
      openSearch(findConversations);
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    const key = e.key.toLowerCase();
    const items = sorted().filter((t) => inView(t, view));
    if (key === "j" || key === "k") {
      const at = items.findIndex((t) => t.interaction === selected);
      const next = items[Math.min(Math.max(at + (key === "j" ? 1 : -1), 0), items.length - 1)];
      if (next) {
        select(next.interaction);
        focusItem(next.interaction); // the focus follows the selection
      }
    } else if (key === "r") {
      document.getElementById("reply-text")?.focus();
    } else if (key === "c") {
      pane.querySelector("[data-action=claim]")?.click();
    } else if (key === "e") {
      (pane.querySelector("[data-action=resolve]") || document.getElementById("return-to-ai"))?.click();
    } else return;
    e.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  loadTickets();
  follow();
  const owners = setInterval(loadOwners, 5000);
  const warner = setInterval(renderWarning, 1000);
  const watcher = setInterval(() => composer?.refresh(), 2000); // who else is replying
  const ticker = setInterval(() => {
    for (const t of list.querySelectorAll(".ticket-time")) t.textContent = ago(t.getAttribute("datetime"));
  }, 30000);
  return {
    title: "Desk",
    el,
    cleanup: () => {
      abort.abort();
      document.removeEventListener("keydown", onKey);
      clearInterval(ticker);
      clearInterval(owners);
      clearInterval(warner);
      clearInterval(watcher);
      if (composer) composer.close();
    },
  };
}
