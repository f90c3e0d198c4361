// The end-user chat page: POST what the user types and uploads, show chat.outbound (SSE).
// The conversation comes from the server (/api/conversation: the recorded transcript and who
// is answering), never from local storage: a reload shows every recorded message as sent, and
// the tabs of one user stay in sync (each refreshes on the stream's messages, and a tab tells
// the others what it sent over a BroadcastChannel).
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const page = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["tenant", "agent", "user", "live_test"]) {
    if (page.has(name)) query.set(name, page.get(name));
  }
  const qs = query.toString() ? `?${query}` : "";
  const LABELS = { ai: "AI assistant", system: "Notice", user: "You" };
  const pending = []; // attachments uploaded, waiting for the next message
  let session = null;
  let storeKey = null;
  let recorded = []; // the server's turns, oldest first
  const local = new Map(); // id -> item seen here (sent, streamed) and not yet recorded
  let answering = null; // who answers now, from the server
  let teammate = null; // the display name of the last teammate who answered
  let tabs = null; // the BroadcastChannel of this user's tabs

  const uuid = () =>
    (crypto.randomUUID && crypto.randomUUID()) ||
    "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
      const r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });

  function showError(text) {
    const el = $("error");
    el.textContent = text || "";
    el.hidden = !text;
  }

  function setStatus(state) {
    const el = $("status");
    el.dataset.state = state;
    el.title = state;
    $("status-text").textContent = state;
  }

  function formatSize(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  // Only http(s) URLs become links or images: an attachment URL comes from whoever wrote
  // the message (a desk, an integration), and `javascript:` or `data:` must not run here.
  function safeUrl(url) {
    try {
      const u = new URL(url, window.location.href);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function fileLink(a) {
    const href = safeUrl(a.url);
    const link = document.createElement(href ? "a" : "span");
    link.className = "file";
    if (href) {
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener";
    }
    if (href && a.content_type && a.content_type.startsWith("image/") && a.content_type !== "image/svg+xml") {
      const img = document.createElement("img");
      img.src = href;
      img.alt = "";
      link.append(img);
    }
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = a.name;
    const size = document.createElement("span");
    size.className = "size";
    size.textContent = formatSize(a.size || 0);
    link.append(name, size);
    return link;
  }

  function render(item) {
    $("empty").hidden = true;
    const box = document.createElement("div");
    box.className = "msg";
    box.dataset.sender = item.sender;
    if (item.id) box.dataset.id = item.id;
    if (item.state) box.dataset.state = item.state;

    const label = document.createElement("div");
    label.className = "label";
    if (item.sender === "ai" || item.sender === "human") {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = item.sender === "ai" ? "AI" : "Human";
      label.append(tag);
    }
    const name = item.sender === "human" ? teammate || "Support team" : LABELS[item.sender];
    label.append(document.createTextNode(name || item.sender));
    box.append(label);

    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = item.text || "";
    if (!item.text) bubble.hidden = true;
    box.append(bubble);

    if (item.attachments && item.attachments.length) {
      const files = document.createElement("div");
      files.className = "files";
      item.attachments.forEach((a) => files.append(fileLink(a)));
      box.append(files);
    }
    const time = document.createElement("div");
    time.className = "time";
    time.textContent = new Date(item.at || Date.now()).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    if (item.sender === "user") {
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = STATES[item.state] || "";
      time.append(state);
    }
    box.append(time);

    const list = $("messages");
    list.append(box);
    list.scrollTop = list.scrollHeight;
    return box;
  }

  const STATES = { sending: " · Sending…", sent: " · Sent", failed: " · Not sent" };

  function fromTurn(t) {
    return {
      id: t.event_id,
      sender: t.role,
      text: t.text,
      attachments: t.attachments,
      at: Date.parse(t.at),
      state: t.role === "user" ? "sent" : undefined,
    };
  }

  // The recorded turns, then what this page has seen that is not recorded yet (a message
  // being sent, a reply the transcript has not caught up with), oldest first.
  function redraw() {
    const ids = new Set(recorded.map((t) => t.event_id));
    for (const id of Array.from(local.keys())) {
      if (ids.has(id) && local.get(id).state !== "failed") local.delete(id);
    }
    const items = recorded.map(fromTurn).concat(Array.from(local.values()));
    items.sort((a, b) => (a.at || 0) - (b.at || 0));
    const list = $("messages");
    list.querySelectorAll(".msg, .divider").forEach((el) => el.remove());
    $("empty").hidden = items.length > 0;
    items.forEach((item) => (item.divider ? divider(item) : render(item)));
  }

  function divider(item) {
    const el = document.createElement("p");
    el.className = "divider";
    el.textContent = item.text;
    $("messages").append(el);
  }

  function add(item) {
    if (recorded.some((t) => t.event_id === item.id)) return;
    local.set(item.id, item);
    redraw();
  }

  function setState(id, state) {
    const item = local.get(id);
    if (item) item.state = state;
    redraw();
  }

  function showAnswering(who) {
    const el = $("answering");
    const was = answering && answering.by;
    answering = who;
    if (who.by === "human" && who.name) teammate = who.name;
    el.dataset.by = who.by;
    if (who.by === "ai") el.textContent = "The AI assistant is answering";
    else if (who.by === "human") el.textContent = `${who.name} from the team is answering`;
    else {
      el.textContent = who.position
        ? `Waiting for a teammate · you are number ${who.position} in line`
        : "Waiting for a teammate";
    }
    if (was && was !== "ai" && who.by === "ai") {
      const at = Date.now();
      local.set(`back-${at}`, {
        id: `back-${at}`,
        divider: true,
        at,
        text: "You are back with the AI assistant.",
      });
      redraw();
    }
  }

  let refreshing = null;
  let again = false;
  // One request at a time; a refresh asked for meanwhile runs once after it.
  async function refresh() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      try {
        const res = await fetch(`/api/conversation${qs}`, { cache: "no-store" });
        if (!res.ok) return;
        const body = await res.json();
        recorded = body.turns;
        showAnswering(body.answering);
        redraw();
      } catch (e) {
        /* offline: the stream's reconnect refreshes again */
      }
    })();
    await refreshing;
    refreshing = null;
    if (again) {
      again = false;
      await refresh();
    }
  }

  function renderPending() {
    const box = $("pending");
    box.replaceChildren();
    pending.forEach((p, i) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.state = p.attachment ? "ready" : "uploading";
      chip.textContent = p.name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.title = "Remove";
      remove.textContent = "×";
      remove.onclick = () => {
        pending.splice(i, 1);
        renderPending();
      };
      chip.append(remove);
      box.append(chip);
    });
    box.hidden = pending.length === 0;
  }

  async function upload(file) {
    const entry = { name: file.name, attachment: null };
    pending.push(entry);
    renderPending();
    const params = new URLSearchParams(query);
    params.set("name", file.name);
    const res = await fetch(`/api/files?${params}`, {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    if (!res.ok) {
      pending.splice(pending.indexOf(entry), 1);
      renderPending();
      const body = await res.json().catch(() => ({}));
      throw new Error(res.status === 413 ? body.detail || "That file is too large." : `${file.name} could not be uploaded. Try again.`);
    }
    entry.attachment = await res.json();
    renderPending();
  }

  async function send(event) {
    event.preventDefault();
    const text = $("text").value.trim();
    if (pending.some((p) => !p.attachment)) return showError("Wait for the upload to finish.");
    const attachments = pending.map((p) => p.attachment);
    if (!text && attachments.length === 0) return;
    showError("");
    const eventId = uuid();
    const item = { id: eventId, sender: "user", text, attachments, at: Date.now() };
    add({ ...item, state: "sending" });
    $("text").value = "";
    pending.length = 0;
    renderPending();
    try {
      const res = await fetch(`/api/messages${qs}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          text,
          attachments: attachments.map((a) => a.id),
          event_id: eventId,
          conversation_id: conversationId(),
        }),
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(res.status >= 500 ? "Not sent: the chat is busy. Try again." : "Not sent. Check the message and try again.");
      }
      setState(eventId, "sent");
      if (tabs) tabs.postMessage({ ...item, state: "sent" });
    } catch (err) {
      setState(eventId, "failed");
      showError(String(err.message || err));
    }
  }

  function conversationId() {
    const key = `${storeKey}:conversation`;
    let id = sessionStorage.getItem(key);
    if (!id) {
      id = `c-${uuid()}`;
      sessionStorage.setItem(key, id);
    }
    return id;
  }

  function connect() {
    const source = new EventSource(`/api/stream${qs}`);
    source.addEventListener("ready", () => {
      setStatus("connected");
      refresh(); // what was said while this page was not listening
    });
    source.addEventListener("answering", () => refresh());
    source.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      add({
        id: m.event_id,
        sender: m.sender,
        text: m.text,
        attachments: m.attachments,
        at: Date.parse(m.sent_at),
      });
      refresh(); // who answers may have changed (a notice, a teammate's reply)
    });
    source.onerror = () => setStatus("reconnecting");
  }

  async function start() {
    const res = await fetch(`/api/session${qs}`);
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      $("answering").textContent = "This chat is not available right now.";
      return;
    }
    session = await res.json();
    storeKey = `handoff:${session.tenant}:${session.agent}:${session.channel}:${session.user}`;
    $("live-test").hidden = !session.live_test;
    if ("BroadcastChannel" in window) {
      tabs = new BroadcastChannel(storeKey);
      tabs.onmessage = (e) => add(e.data); // what another tab of this user sent
    }
    await refresh();
    connect();
  }

  $("composer").addEventListener("submit", send);
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("text").addEventListener("input", (e) => {
    e.target.style.height = "auto";
    e.target.style.height = `${Math.min(e.target.scrollHeight, 140)}px`;
  });
  $("file").addEventListener("change", async (e) => {
    showError("");
    for (const file of Array.from(e.target.files)) {
      try {
        await upload(file);
      } catch (err) {
        showError(String(err.message || err));
      }
    }
    e.target.value = "";
  });
  start();
})();
