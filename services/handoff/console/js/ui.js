// Small DOM helpers. Text always goes in as text nodes: nothing from the server is parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Time -----------------------------------------------------------------------------------

const absolute = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});

export function when(iso) {
  return iso ? absolute.format(new Date(iso)) : "—";
}

export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return `${Math.round(hours / 24)} d ago`;
}

export function countdown(iso) {
  const left = Math.max(0, Math.round((new Date(iso).getTime() - Date.now()) / 1000));
  const d = Math.floor(left / 86400);
  const hh = Math.floor((left % 86400) / 3600);
  const mm = Math.floor((left % 3600) / 60);
  const ss = left % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (d) return `${d}d ${pad(hh)}:${pad(mm)}:${pad(ss)}`;
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${pad(mm)}:${pad(ss)}`;
}

// A live countdown element: ticks once a second while it is in the document; calls onDone
// (once) when the time is up.
export function liveCountdown(iso, onDone) {
  const el = h("span", { class: "countdown", title: when(iso), dataset: { until: iso } }, countdown(iso));
  let fired = false;
  const timer = setInterval(() => {
    if (!el.isConnected) {
      if (fired || Date.now() > new Date(iso).getTime() + 60000) clearInterval(timer);
      return;
    }
    el.textContent = countdown(iso);
    if (!fired && Date.now() >= new Date(iso).getTime()) {
      fired = true;
      clearInterval(timer);
      el.classList.add("done");
      if (onDone) onDone();
    }
  }, 1000);
  return el;
}

// Words ----------------------------------------------------------------------------------

export function modeBadge(mode) {
  return h("span", { class: `badge mode-${mode}`, dataset: { mode } }, mode === "human" ? "Human" : "AI");
}

const CAUSE = { agent: "the agent", operator: "an operator", timeout: "the idle timeout" };
export function causeText(state) {
  if (!state.cause) return "On AI since the start; never switched.";
  const to = state.mode === "human" ? "Handed to a human" : "Back on AI";
  const by = state.cause === "timeout" ? CAUSE.timeout : state.actor || CAUSE[state.cause];
  return `${to} by ${by}`;
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// Attachments and transcripts --------------------------------------------------------------

function safeUrl(url) {
  try {
    const u = new URL(url, location.href);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch {
    return null;
  }
}

export function attachmentChip(a) {
  const href = safeUrl(a.url);
  const label = [h("span", { class: "att-name" }, a.name), h("span", { class: "att-meta" }, `${a.content_type} · ${bytes(a.size)}`)];
  return href
    ? h("a", { class: "attachment", href, target: "_blank", rel: "noopener noreferrer" }, h("span", { class: "clip", "aria-hidden": "true" }), label)
    : h("span", { class: "attachment" }, h("span", { class: "clip", "aria-hidden": "true" }), label);
}

const ROLE = { user: "User", ai: "AI", system: "System", human: "Teammate" };

export function turnView(turn) {
  return h(
    "li",
    { class: `turn turn-${turn.role}`, dataset: { eventId: turn.event_id } },
    h("div", { class: "turn-head" }, h("span", { class: "turn-role" }, ROLE[turn.role] || turn.role), h("time", { datetime: turn.at, title: when(turn.at) }, ago(turn.at))),
    turn.text ? h("div", { class: "turn-text" }, turn.text) : null,
    turn.attachments && turn.attachments.length ? h("div", { class: "attachments" }, turn.attachments.map(attachmentChip)) : null,
  );
}

export function transcriptView(turns, emptyText = "No recorded turns yet.") {
  if (!turns.length) return h("p", { class: "empty" }, emptyText);
  return h("ol", { class: "transcript" }, turns.map(turnView));
}

// Feedback -------------------------------------------------------------------------------

export function toast(text, kind = "info") {
  const el = h("div", { class: `toast toast-${kind}` }, text);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}

export function errorBox(error) {
  return h("div", { class: "alert alert-error", role: "alert", dataset: { code: error.code || "" } }, said(error));
}

// What a refused action means, in words a teammate understands: never a raw code or a
// validation path. Unknown codes fall back to the server's sentence.
const SAID = {
  already_assigned: "Someone else took this ticket a moment ago.",
  ticket_closed: "This ticket is already closed: the conversation has moved on.",
  version_conflict: "This changed while you were looking at it. It has been reloaded; try again.",
  not_assigned: "Nobody owns this ticket right now, so there is nothing to release.",
  same_queue: "The ticket is already in that queue.",
  unknown_queue: "That queue does not exist, or this agent may not hand off to it.",
  ticket_not_found: "This ticket no longer exists.",
  queue_not_found: "There is no such queue.",
  not_found: "This no longer exists.",
  insufficient_role: "Your role can look but not change things. Ask an editor.",
  not_in_human_mode: "The AI has this conversation again; there is nothing to extend.",
  no_idle_timeout: "This conversation has no idle timeout; it stays with people until someone switches it.",
  unavailable: "The server is busy for a moment. Try again.",
  network: "The server cannot be reached. Check your connection.",
  invalid_range: "That time range is not valid.",
  token_expired: "Your session expired — sign in again.",
  invalid_token: "Your session is no longer valid — sign in again.",
  missing_token: "Your session expired — sign in again.",
  http_413: "That is too large to send. Make it smaller and try again.",
  http_404: "This no longer exists.",
  http_500: "Something went wrong on the server. Try again in a moment.",
};

// A validation error's field in words, by its stable `type` (pydantic's error type) and the
// bound in its `ctx`; `value`, when the form knows what was sent, says how far off it is.
// Never pydantic's own sentence, nor a validation path.
const chars = (value) => [...String(value)].length; // characters as the server counts them
export function fieldProblem(field, value) {
  const c = field.ctx || {};
  const have = value === undefined || value === null ? "" : ` (you have ${chars(value)})`;
  switch (field.type) {
    case "missing":
      return "Please fill this in.";
    case "string_too_short":
      return c.min_length === 1 ? "Please fill this in." : `Too short: at least ${c.min_length} characters${have}.`;
    case "string_too_long":
      return `Too long: at most ${c.max_length} characters${have}.`;
    case "too_short":
      return `Too few: at least ${c.min_length}.`;
    case "too_long":
      return `Too many: at most ${c.max_length}.`;
    case "greater_than_equal":
      return `Too small: at least ${c.ge}.`;
    case "greater_than":
      return `Too small: more than ${c.gt}.`;
    case "less_than_equal":
      return `Too large: at most ${c.le}.`;
    case "less_than":
      return `Too large: less than ${c.lt}.`;
    case "int_parsing":
    case "int_type":
    case "int_from_float":
      return "Please enter a whole number.";
    case "float_parsing":
    case "float_type":
      return "Please enter a number.";
    case "bool_parsing":
    case "bool_type":
      return "Please choose on or off.";
    case "literal_error":
    case "enum":
      return "Please choose one of the offered values.";
    case "string_pattern_mismatch":
      return "Please use only the characters allowed here.";
    case "value_error": // our validators' own words, e.g. "must not be blank"
      return `${String(field.message || "").replace(/^Value error, /, "").replace(/^./, (x) => x.toUpperCase())}.`;
    default:
      return "Please check this value.";
  }
}

// For a message about the whole form: the field named by its last path segment
// (`body.ai.reason` -> "the reason").
function fieldWords(field) {
  const parts = String(field.loc || "").split(".").filter((p) => p && p !== "body" && !/^\d+$/.test(p));
  const name = `the ${(parts[parts.length - 1] || "form").replace(/_/g, " ")}`;
  const problem = fieldProblem(field);
  if (problem === "Please fill this in.") return `Please fill in ${name}.`;
  return `Please check ${name}: ${problem.charAt(0).toLowerCase()}${problem.slice(1)}`;
}

export function said(error) {
  if (SAID[error.code]) return SAID[error.code];
  if (error.code === "validation_failed") {
    const first = (error.fields || [])[0];
    return first ? fieldWords(first) : "Please check the form.";
  }
  if (error.status >= 500) return SAID.http_500;
  return error.message || "Something went wrong. Try again.";
}

export function saidBox(error) {
  return h("div", { class: "alert alert-error", role: "alert" }, said(error));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const hh = Math.floor(m / 60);
  return m % 60 ? `${hh} h ${m % 60} min` : `${hh} h`;
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading" }, text);
}

// A modal dialog built on <dialog>. `fields` returns the form's content; resolves with the
// FormData on confirm, null on cancel. `submit(form)` may throw to keep the dialog open.
export function openDialog({ title, body, confirm, danger = false, submit, confirmId }) {
  return new Promise((resolve) => {
    const error = h("div", { class: "dialog-error", role: "alert" });
    const titleId = `dialog-title-${++dialogs}`;
    const form = h(
      "form",
      { method: "dialog", class: "dialog-form" },
      h("h2", { id: titleId }, title),
      body,
      error,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", class: "button secondary", value: "cancel", onclick: () => close(null) }, "Cancel"),
        h("button", { type: "submit", class: `button ${danger ? "danger" : "primary"}`, id: confirmId }, confirm),
      ),
    );
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId }, form);
    const opener = document.activeElement; // where focus returns when the dialog closes
    let done = false;
    const close = (value) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      resolve(value);
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const submitButton = form.querySelector("button[type=submit]");
      submitButton.disabled = true;
      error.replaceChildren();
      try {
        const result = submit ? await submit(new FormData(form)) : new FormData(form);
        close(result);
      } catch (err) {
        error.replaceChildren(err.message || String(err));
        submitButton.disabled = false;
      }
    });
    dialog.addEventListener("cancel", () => close(null)); // Escape
    dialog.addEventListener("keydown", (event) => trapTab(dialog, event));
    document.body.append(dialog);
    dialog.showModal();
    // Into the dialog: its first field, else its first button (Cancel, the harmless one).
    (form.querySelector("textarea, input") || form.querySelector("button")).focus();
  });
}

let dialogs = 0;
const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

// Tab and Shift+Tab go round the dialog's own controls: a modal dialog makes the page inert,
// but without this the focus would leave for the browser's own controls.
function trapTab(dialog, event) {
  if (event.key !== "Tab") return;
  const focusable = [...dialog.querySelectorAll(FOCUSABLE)];
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}
