// The desk's reply box helpers (issue 14): who else is replying ("Omar is replying…", a
// heartbeat while you type), files attached to a reply, and the tenant's canned replies,
// inserted with a picker or by typing `/` and a few letters.

import { del, get, paths, put, upload } from "./api.js";
import { attachmentChip, bytes, clear, h, said } from "./ui.js";

const MAX_FILES = 20; // an OutboundMessage's attachments (the contract's limit)
const BEAT_MS = 4000; // a heartbeat while typing; the server holds it 10 s

// Presence --------------------------------------------------------------------------------

function presenceText(teammates) {
  const composing = teammates.filter((t) => t.activity === "composing").map((t) => t.display_name);
  if (composing.length) return `${composing.join(" and ")} ${composing.length > 1 ? "are" : "is"} replying…`;
  const replied = teammates.filter((t) => t.activity === "replied").map((t) => t.display_name);
  return replied.length ? `${replied.join(" and ")} just replied` : "";
}

// Says who else is at it (polled with refresh(), and from each heartbeat's answer), and tells
// the others while this teammate types in `textarea`.
export function presence(session, base, textarea, canWrite) {
  const el = h("p", { class: "composing", id: "composing", "aria-live": "polite" });
  let others = [];
  let beatAt = 0;
  let beating = false;
  const show = (found) => {
    others = found.teammates;
    const text = presenceText(others);
    if (el.textContent !== text) el.textContent = text;
  };
  const beat = async () => {
    beatAt = Date.now();
    beating = true;
    try {
      show(await put(`${base}/composing`, {}));
    } catch (err) {
      /* presence is a courtesy: the reply still works without it */
    }
  };
  const stop = () => {
    if (!beating) return;
    beating = false;
    del(`${base}/composing`).catch(() => null);
  };
  if (canWrite) {
    textarea.addEventListener("input", () => {
      if (!textarea.value.trim()) stop();
      else if (Date.now() - beatAt > BEAT_MS) beat();
    });
  }
  const timer = setInterval(() => {
    if (canWrite && textarea.isConnected && textarea.value.trim() && document.activeElement === textarea && Date.now() - beatAt > BEAT_MS) beat();
  }, 1000);
  return {
    el,
    async refresh() {
      try {
        show(await get(`${base}/composing`));
      } catch (err) {
        /* shown again at the next refresh */
      }
      return others;
    },
    sent() {
      beating = false; // the server counts the reply as "just replied"
    },
    close(redrawn = false) {
      clearInterval(timer);
      if (!redrawn) stop();
    },
  };
}

// The sentence a teammate reads before answering a user someone else is answering.
export function presenceWarning(teammates, user) {
  const composing = teammates.filter((t) => t.activity === "composing");
  if (composing.length) return `${composing.map((t) => t.display_name).join(" and ")} ${composing.length > 1 ? "are" : "is"} replying to ${user}`;
  const replied = teammates.filter((t) => t.activity === "replied");
  return replied.length ? `${replied.map((t) => t.display_name).join(" and ")} just replied to ${user}` : null;
}

// Files -------------------------------------------------------------------------------------

// An attach button (a real button: in the tab order), the files attached so far, and what
// went wrong, in words. Each file is stored as soon as it is picked.
export function fileTray(session) {
  const attached = [];
  const input = h("input", { type: "file", id: "reply-file", class: "sr-only", tabindex: "-1", "aria-hidden": "true", multiple: true });
  const tray = h("ul", { class: "reply-files", id: "reply-files", "aria-label": "Attached files" });
  const error = h("p", { class: "reply-error", id: "reply-files-error", role: "alert" });
  const button = h("button", { type: "button", class: "button small secondary", id: "reply-attach", onclick: () => input.click() }, "Attach file");
  const render = () => clear(tray, attached.map((a, i) => h("li", { class: "chip" },
    attachmentChip(a),
    h("button", {
      type: "button",
      class: "link chip-remove",
      "aria-label": `Remove ${a.name}`,
      onclick: () => {
        attached.splice(i, 1);
        render();
        button.focus();
      },
    }, "×"))));
  input.addEventListener("change", async () => {
    const picked = [...input.files];
    input.value = "";
    error.textContent = "";
    for (const file of picked) {
      if (attached.length >= MAX_FILES) {
        error.textContent = `A reply carries at most ${MAX_FILES} files.`;
        break;
      }
      const pending = h("li", { class: "chip pending" }, `${file.name} · ${bytes(file.size)} · uploading…`);
      tray.append(pending);
      try {
        attached.push(await upload(`${paths.desk(session.tenant)}/files`, file));
      } catch (err) {
        error.textContent = said(err);
      }
      pending.remove();
      render();
    }
  });
  return {
    controls: [button, input],
    tray,
    error,
    files: () => [...attached],
    clear() {
      attached.length = 0;
      error.textContent = "";
      render();
    },
  };
}

// Canned replies ------------------------------------------------------------------------------

export function cannedReplies(session) {
  let loaded = null;
  return {
    list(fresh = false) {
      if (!loaded || fresh) loaded = get(paths.canned(session.tenant)).then((r) => r.items).catch(() => []);
      return loaded;
    },
  };
}

const matches = (items, query) => {
  const q = query.toLowerCase();
  return items.filter((c) => c.id.toLowerCase().includes(q) || c.title.toLowerCase().includes(q)).slice(0, 8);
};

// Puts `text` where the caret is (replacing `from`..caret), a space apart from what precedes.
function insertAt(textarea, text, from) {
  const caret = textarea.selectionStart ?? textarea.value.length;
  const start = from ?? caret;
  const before = textarea.value.slice(0, start);
  const after = textarea.value.slice(caret);
  const joined = before && !/\s$/.test(before) ? `${before} ${text}` : `${before}${text}`;
  textarea.value = joined + after;
  textarea.setSelectionRange(joined.length, joined.length);
  textarea.dispatchEvent(new Event("input", { bubbles: true })); // the draft and presence follow
  textarea.focus();
}

// `/` and letters at a word's start offer the matching canned replies below the box: arrows
// choose, Enter or Tab inserts, Escape closes. The box points at the active one
// (aria-activedescendant) and a live line says how many there are.
export function slashCommands(textarea, canned) {
  const listbox = h("ul", { class: "canned-options", id: "canned-options", role: "listbox", "aria-label": "Canned replies" });
  const status = h("p", { class: "sr-only", "aria-live": "polite" });
  let found = [];
  let active = 0;
  let from = null;
  textarea.setAttribute("aria-controls", "canned-options");
  const close = () => {
    found = [];
    from = null;
    clear(listbox);
    listbox.hidden = true;
    textarea.removeAttribute("aria-activedescendant");
  };
  const render = () => {
    clear(listbox, found.map((c, i) => h("li", {
      role: "option",
      id: `canned-option-${i}`,
      class: i === active ? "active" : "",
      "aria-selected": i === active ? "true" : "false",
      onmousedown: (e) => {
        e.preventDefault(); // keeps the focus in the box
        choose(i);
      },
    }, h("span", { class: "canned-title" }, c.title), h("span", { class: "canned-text" }, c.text))));
    listbox.hidden = !found.length;
    if (found.length) textarea.setAttribute("aria-activedescendant", `canned-option-${active}`);
    else textarea.removeAttribute("aria-activedescendant");
  };
  const choose = (i) => {
    const c = found[i];
    const start = from;
    close();
    if (c) insertAt(textarea, c.text, start);
  };
  textarea.addEventListener("input", async () => {
    const caret = textarea.selectionStart;
    const m = /(^|\s)\/([\w-]*)$/.exec(textarea.value.slice(0, caret));
    if (!m) return close();
    const start = caret - m[2].length - 1;
    const items = matches(await canned.list(), m[2]);
    if (textarea.selectionStart !== caret) return; // typed on meanwhile: the next input decides
    found = items;
    from = start;
    active = 0;
    render();
    status.textContent = found.length ? `${found.length} canned ${found.length === 1 ? "reply" : "replies"}: arrows choose, Enter inserts.` : "";
  });
  textarea.addEventListener("keydown", (e) => {
    if (!found.length) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      active = (active + (e.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      render();
    } else if ((e.key === "Enter" && !e.ctrlKey && !e.metaKey) || e.key === "Tab") {
      choose(active);
    } else if (e.key === "Escape") {
      close();
    } else return;
    e.preventDefault();
    e.stopPropagation();
  });
  textarea.addEventListener("blur", () => setTimeout(close, 0));
  close();
  return { listbox, status, isOpen: () => found.length > 0 };
}

// The picker: every canned reply of the tenant in a dialog; the chosen one goes where the
// caret was, and the focus back to the box.
export function cannedPicker(textarea, canned) {
  return h("button", {
    type: "button",
    class: "button small secondary",
    id: "canned-open",
    onclick: async () => {
      const items = await canned.list(true);
      const dialog = h("dialog", { class: "dialog", "aria-labelledby": "canned-title" });
      const done = (item) => {
        dialog.close();
        dialog.remove();
        if (item) insertAt(textarea, item.text);
        else textarea.focus();
      };
      dialog.append(h("div", { class: "dialog-form" },
        h("h2", { id: "canned-title" }, "Canned replies"),
        items.length
          ? h("ul", { class: "canned-list" }, items.map((c) => h("li", {},
              h("button", { type: "button", class: "canned-item", dataset: { canned: c.id }, onclick: () => done(c) },
                h("span", { class: "canned-title" }, c.title), h("span", { class: "canned-text" }, c.text)))))
          : h("p", { class: "muted" }, "This team has no canned replies yet. An editor adds them through the API (PUT /v1/tenants/{t}/canned-replies/{id})."),
        h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "button secondary", value: "cancel", onclick: () => done(null) }, "Close"))));
      dialog.addEventListener("cancel", (e) => {
        e.preventDefault();
        done(null);
      });
      document.body.append(dialog);
      dialog.showModal();
      dialog.querySelector("button")?.focus();
    },
  }, "Canned replies");
}
