// The end-user chat page: POST what the user types and uploads, show chat.outbound (SSE).
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const page = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["tenant", "agent", "user", "live_test"]) {
    if (page.has(name)) query.set(name, page.get(name));
  }
  const qs = query.toString() ? `?${query}` : "";
  const LABELS = { ai: "AI assistant", human: "Teammate", system: "Notice", user: "You" };
  const pending = []; // attachments uploaded, waiting for the next message
  let session = null;
  let storeKey = null;
  let history = [];

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
    label.append(document.createTextNode(LABELS[item.sender] || item.sender));
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
    box.append(time);

    const list = $("messages");
    list.append(box);
    list.scrollTop = list.scrollHeight;
    return box;
  }

  function remember(item) {
    history.push(item);
    history = history.slice(-200);
    try {
      localStorage.setItem(storeKey, JSON.stringify(history));
    } catch (e) {
      /* storage full or disabled: the page still works */
    }
  }

  function add(item) {
    if (item.id && history.some((h) => h.id === item.id)) return null; // a redelivery
    remember(item);
    return render(item);
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
      throw new Error(body.detail || `upload failed (${res.status})`);
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
    const box = add({
      id: eventId,
      sender: "user",
      text,
      attachments,
      at: Date.now(),
      state: "sending",
    });
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
        throw new Error(body.detail || `not sent (${res.status})`);
      }
      if (box) box.dataset.state = "sent";
    } catch (err) {
      if (box) box.dataset.state = "failed";
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
    source.addEventListener("ready", () => setStatus("connected"));
    source.addEventListener("message", (e) => {
      const m = JSON.parse(e.data);
      add({
        id: m.event_id,
        sender: m.sender,
        text: m.text,
        attachments: m.attachments,
        at: Date.parse(m.sent_at),
      });
    });
    source.onerror = () => setStatus("reconnecting");
  }

  async function start() {
    const res = await fetch(`/api/session${qs}`);
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      $("subtitle").textContent = body.detail || "This chat is not available.";
      return;
    }
    session = await res.json();
    storeKey = `handoff:${session.tenant}:${session.agent}:${session.channel}:${session.user}`;
    $("title").textContent = `${session.tenant} · ${session.agent}`;
    $("subtitle").textContent = `You are ${session.user}`;
    $("live-test").hidden = !session.live_test;
    document.title = `Chat · ${session.agent}`;
    try {
      history = JSON.parse(localStorage.getItem(storeKey) || "[]");
    } catch (e) {
      history = [];
    }
    history.forEach(render);
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
