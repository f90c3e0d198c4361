// Agents: the handoff section of an agent's settings, Apply (a new version) and Publish.

import { get, paths, post } from "./api.js";
import { ago, clear, errorBox, fieldProblem, h, loading, openDialog, plural, said, toast, when } from "./ui.js";

const RECENT = "handoff.recent-agents";
const DEFAULT_NOTICE = "I've handed this conversation to a human teammate. They'll reply here as soon as they can.";

function recent() {
  try {
    return JSON.parse(sessionStorage.getItem(RECENT) || "[]");
  } catch {
    return [];
  }
}

function remember(agent) {
  const list = [agent, ...recent().filter((a) => a !== agent)];
  sessionStorage.setItem(RECENT, JSON.stringify(list.slice(0, 8)));
}

export function agentLookupPage(session) {
  const input = h("input", { id: "agent-id", required: true, autocomplete: "off", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,127}", placeholder: "e.g. support" });
  const form = h("form", {
    class: "card lookup",
    onsubmit: (e) => { e.preventDefault(); location.hash = `#/agents/${encodeURIComponent(input.value.trim())}`; },
  },
  h("h1", {}, "Agent settings"),
  h("p", { class: "muted" }, "Open an agent to change when and how it hands conversations to people. A new agent starts with its first Apply."),
  h("div", { class: "row" },
    h("div", { class: "field grow" }, h("label", { for: "agent-id" }, "Agent id"), input),
    h("div", { class: "field end" }, h("button", { type: "submit", class: "button primary" }, "Open"))));
  const list = recent();
  setTimeout(() => input.focus());
  return {
    title: "Agents",
    el: h("div", { class: "page narrow-page" }, form, agentList(session),
      list.length ? h("section", { class: "card" }, h("h2", {}, "Recently opened"), h("ul", { class: "link-list" }, list.map((a) => h("li", {}, h("a", { href: `#/agents/${encodeURIComponent(a)}` }, a))))) : null),
  };
}

// The tenant's agents, searchable as one types (they are few: the whole list is loaded).
function agentList(session) {
  const search = h("input", { id: "agent-search", type: "search", autocomplete: "off", placeholder: "Part of an agent id" });
  const items = h("ul", { id: "agent-list", class: "entity-list" }, h("li", {}, loading()));
  let agents = [];
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = agents.filter((a) => a.agent_id.toLowerCase().includes(q));
    if (!agents.length) return clear(items, h("li", { class: "empty" }, "No agents yet. Open one by its id to create it."));
    if (!shown.length) return clear(items, h("li", { class: "empty" }, `No agent matches “${search.value.trim()}”.`));
    clear(items, shown.map((a) => h("li", { dataset: { agent: a.agent_id } },
      h("a", { href: `#/agents/${encodeURIComponent(a.agent_id)}` }, a.agent_id),
      h("span", { class: "muted small" }, versionsText(a), " · changed ", h("time", { datetime: a.updated_at, title: when(a.updated_at) }, ago(a.updated_at))))));
  };
  search.addEventListener("input", render);
  get(paths.agents(session.tenant))
    .then((page) => { agents = page.items; render(); })
    .catch((err) => clear(items, h("li", {}, errorBox(err))));
  return h("section", { class: "card" },
    h("h2", {}, "All agents"),
    h("div", { class: "field" }, h("label", { for: "agent-search" }, "Search agents"), search),
    items);
}

function versionsText(a) {
  const live = a.published_version ? `version ${a.published_version} live` : "not published";
  if (a.latest_version === a.published_version) return live;
  return a.published_version ? `${live} · version ${a.latest_version} not published` : `${live} · ${plural(a.latest_version, "version")}`;
}

// Agents whose id is close to `id` (a typo: one or two letters off, or one contains the other).
function lookalikes(id, agents) {
  const near = (a, b) => {
    if (Math.abs(a.length - b.length) > 2) return false;
    let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      const row = [i];
      for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row;
    }
    return prev[b.length] <= 2;
  };
  const low = id.toLowerCase();
  return agents.map((a) => a.agent_id).filter((a) => near(low, a.toLowerCase()) || a.toLowerCase().includes(low) || low.includes(a.toLowerCase())).slice(0, 5);
}

// Handoff settings, field by field: how the diff of a Publish names and shows them.
const FIELDS = {
  enabled: "Handoff enabled",
  idle_timeout_minutes: "Idle timeout (minutes)",
  instructions: "When to hand off",
  notice_text: "Message to the user",
  queues: "Queues",
  out_of_hours: "Outside opening hours",
  waiting_notice_text: "Waiting message",
  return_notice_text: "Message when the AI takes over again",
  announce_teammate: "“… has joined” message to the user",
};

function shown(key, value) {
  if (value === undefined) return "(the default)";
  if (typeof value === "boolean") return value ? "on" : "off";
  if (key === "idle_timeout_minutes") return value === null ? "no timeout" : String(value);
  if (key === "queues") return value && value.length ? value.join(", ") : "default";
  if (value === "" || value === null) return "(empty: built-in)";
  return String(value);
}

// [{key, label, was, now}] of the settings that differ between two handoff blocks.
export function handoffDiff(from, to) {
  const keys = [...new Set([...Object.keys(FIELDS), ...Object.keys(from || {}), ...Object.keys(to || {})])];
  return keys
    .filter((k) => JSON.stringify((from || {})[k]) !== JSON.stringify((to || {})[k]))
    .map((k) => ({ key: k, label: FIELDS[k] || k.replace(/_/g, " "), was: shown(k, (from || {})[k]), now: shown(k, (to || {})[k]) }));
}

function diffTable(live, changes, nowLabel) {
  if (!live) return h("p", {}, "Nothing is live yet: these settings become the first live version.");
  if (!changes.length) return h("p", {}, `Same settings as the live version ${live.version}.`);
  return h("table", { class: "diff" },
    h("caption", { class: "muted small" }, `What changes for users, against the live version ${live.version}`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Setting"), h("th", { scope: "col" }, `Live (version ${live.version})`), h("th", { scope: "col" }, nowLabel))),
    h("tbody", {}, changes.map((c) => h("tr", { dataset: { field: c.key } },
      h("th", { scope: "row" }, c.label), h("td", { class: "was" }, c.was), h("td", { class: "now" }, c.now)))));
}

// Publish asks first, showing what would change for users (a notice-only change included).
function confirmPublish(live, handoff, title, nowLabel, confirm) {
  return openDialog({
    title,
    body: h("div", { class: "publish-diff" }, diffTable(live, handoffDiff(live && live.handoff, handoff), nowLabel)),
    confirm,
    submit: async () => true,
  });
}

function summary(v) {
  const hd = v.handoff;
  if (!hd.enabled) return "Handoff off";
  return `Handoff on · ${hd.idle_timeout_minutes ? `${hd.idle_timeout_minutes} min idle timeout` : "no idle timeout"}`;
}

export function agentPage(session, agentId) {
  const canWrite = session.can_write;
  const idleBound = session.limits.idle_timeout_minutes;
  const formBox = h("section", { class: "card settings" }, loading());
  const versionsBox = h("section", { class: "card versions" }, loading());
  const el = h("div", { class: "page" },
    h("nav", { class: "crumbs" }, h("a", { href: "#/agents" }, "Agents"), " / ", agentId),
    h("div", { class: "page-head" }, h("h1", {}, agentId), h("span", { id: "published-label", class: "muted", tabindex: "-1" })),
    h("div", { class: "split" }, formBox, versionsBox));
  let agent = null;
  let editing = null; // the version shown in the form
  let creating = false; // an unknown id the operator chose to create

  // An id nobody applied yet is most often a typo: say so, offer the lookalikes, and start
  // a new agent only when asked.
  async function unknownAgent() {
    const known = await get(paths.agents(session.tenant)).then((p) => p.items).catch(() => []);
    const like = lookalikes(agentId, known);
    document.getElementById("published-label").textContent = "";
    versionsBox.hidden = true;
    clear(formBox, h("div", { id: "unknown-agent" },
      h("h2", {}, `No agent named “${agentId}” yet — create it?`),
      h("p", { class: "muted" }, "Nothing was ever applied under this id in this tenant. Check the spelling: a new agent starts with its first Apply."),
      like.length
        ? h("p", {}, "Did you mean ", like.map((a, i) => [i ? ", " : "", h("a", { href: `#/agents/${encodeURIComponent(a)}`, dataset: { suggestion: a } }, a)]), "?")
        : null,
      h("div", { class: "form-actions" },
        canWrite
          ? h("button", { type: "button", class: "button primary", id: "create-agent", onclick: () => { creating = true; load(); } }, `Create ${agentId}`)
          : h("p", { class: "hint" }, "Creating an agent needs the editor role."),
        h("a", { class: "button secondary", href: "#/agents" }, "All agents"))));
  }

  async function load(showVersion) {
    try {
      agent = await get(paths.agent(session.tenant, agentId));
      remember(agentId);
    } catch (err) {
      if (err.code !== "agent_not_found") {
        clear(formBox, errorBox(err));
        clear(versionsBox);
        return;
      }
      agent = { versions: [], published_version: null };
      if (!creating) return unknownAgent();
    }
    versionsBox.hidden = false;
    const published = agent.versions.find((v) => v.published);
    editing = agent.versions.find((v) => v.version === showVersion) || published || agent.versions[0] || null;
    document.getElementById("published-label").textContent = published
      ? `Live: version ${published.version} · ${summary(published)}`
      : agent.versions.length ? "No version published yet" : "New agent: nothing applied yet";
    renderForm();
    renderVersions();
  }

  function counter(textarea, max) {
    const out = h("span", { class: "counter" });
    const update = () => {
      out.textContent = `${textarea.value.length} / ${max}`;
      out.classList.toggle("over", textarea.value.length > max);
    };
    textarea.addEventListener("input", update);
    update();
    return out;
  }

  function renderForm() {
    const hd = editing ? editing.handoff : { enabled: true, idle_timeout_minutes: null, instructions: "", notice_text: DEFAULT_NOTICE };
    const disabled = !canWrite;
    const enabled = h("input", { type: "checkbox", id: "f-enabled", name: "enabled", role: "switch", checked: hd.enabled, disabled });
    const idle = h("input", { type: "number", id: "f-idle", name: "idle_timeout_minutes", min: idleBound.min, max: idleBound.max, value: hd.idle_timeout_minutes ?? "", placeholder: "no timeout", disabled });
    const instructions = h("textarea", { id: "f-instructions", name: "instructions", rows: 5, disabled }, hd.instructions);
    const notice = h("textarea", { id: "f-notice", name: "notice_text", rows: 3, required: true, disabled }, hd.notice_text);
    const queues = h("input", { type: "text", id: "f-queues", name: "queues", value: (hd.queues || []).join(", "), placeholder: "default", disabled });
    const outOfHours = h("select", { id: "f-out-of-hours", name: "out_of_hours", disabled },
      h("option", { value: "queue", selected: (hd.out_of_hours || "queue") === "queue" }, "Hand over anyway, and tell the user when the team is back"),
      h("option", { value: "stay_with_ai", selected: hd.out_of_hours === "stay_with_ai" }, "Keep the user with the AI, and tell them when people are available"));
    const noticeChars = session.limits.notice_chars;
    const waiting = h("textarea", { id: "f-waiting", name: "waiting_notice_text", rows: 2, maxlength: noticeChars, disabled, placeholder: "Built-in: your place in line and the expected wait" }, hd.waiting_notice_text || "");
    const returning = h("textarea", { id: "f-return", name: "return_notice_text", rows: 2, maxlength: noticeChars, disabled }, hd.return_notice_text || "");
    const announce = h("input", { type: "checkbox", id: "f-announce", name: "announce_teammate", role: "switch", checked: !!hd.announce_teammate, disabled, "aria-describedby": "f-announce-hint" });
    const errors = h("div", { class: "form-errors" });
    const fieldError = (name) => h("div", { class: "field-error", dataset: { for: name } });
    const form = h("form", {
      id: "settings-form",
      onsubmit: async (e) => {
        e.preventDefault();
        for (const fe of form.querySelectorAll(".field-error")) fe.textContent = "";
        errors.replaceChildren();
        // Starts from the version being edited, so settings this form does not show are kept.
        const handoff = {
          ...(editing ? editing.handoff : {}),
          enabled: enabled.checked,
          idle_timeout_minutes: idle.value === "" ? null : Number(idle.value),
          instructions: instructions.value,
          notice_text: notice.value,
          queues: queues.value.split(",").map((q) => q.trim()).filter(Boolean),
          out_of_hours: outOfHours.value,
          waiting_notice_text: waiting.value,
          return_notice_text: returning.value,
          announce_teammate: announce.checked,
        };
        if (!handoff.return_notice_text.trim()) delete handoff.return_notice_text; // the default
        const publishToo = e.submitter && e.submitter.dataset.publish === "1";
        if (publishToo) {
          const live = agent.versions.find((v) => v.published);
          const ok = await confirmPublish(live, handoff, "Apply and publish these settings?", "This form", "Apply and publish");
          if (!ok) return;
        }
        try {
          const v = await post(`${paths.agent(session.tenant, agentId)}/versions`, { handoff });
          if (publishToo) await post(`${paths.agent(session.tenant, agentId)}/versions/${v.version}/publish`);
          toast(publishToo ? `Version ${v.version} applied and published.` : `Version ${v.version} applied. Publish it to make it live.`, "success");
          await load(v.version);
          // The form was redrawn: the focus goes to what changed (the live version), or Apply.
          document.getElementById(publishToo ? "published-label" : "apply")?.focus();
        } catch (err) {
          if (err.code === "validation_failed" && err.fields.length) {
            for (const f of err.fields) {
              const name = f.loc.split(".").pop();
              const slot = form.querySelector(`.field-error[data-for="${name}"]`);
              const box = form.querySelector(`[name="${CSS.escape(name)}"]`);
              if (slot) slot.textContent = fieldProblem(f, box && "value" in box && box.type !== "checkbox" ? box.value : undefined);
              else errors.append(errorBox({ code: "validation_failed", fields: [f] }));
            }
          } else {
            errors.append(errorBox(err));
          }
        }
      },
    },
    h("div", { class: "section-head" }, h("h2", {}, "Handoff"), editing ? h("span", { class: "muted" }, `editing from version ${editing.version}`) : null),
    h("div", { class: "field toggle" }, enabled, h("label", { for: "f-enabled" }, "Let the agent hand conversations to a person"), fieldError("enabled")),
    h("div", { class: "field" }, h("label", { for: "f-idle" }, "Idle timeout (minutes)"), idle,
      h("p", { class: "hint" }, `Back to the AI this long after the user's last message. Empty: no timeout, a person switches back. ${idleBound.min}–${idleBound.max}.`), fieldError("idle_timeout_minutes")),
    h("div", { class: "field" }, h("div", { class: "label-row" }, h("label", { for: "f-instructions" }, "When to hand off"), counter(instructions, session.limits.instructions_chars)), instructions,
      h("p", { class: "hint" }, "Instructions for the agent: which situations call for a person."), fieldError("instructions")),
    h("div", { class: "field" }, h("div", { class: "label-row" }, h("label", { for: "f-notice" }, "Message to the user"), counter(notice, session.limits.notice_chars)), notice,
      h("p", { class: "hint" }, "Sent to the user when the conversation is handed over."), fieldError("notice_text")),
    h("div", { class: "field" }, h("label", { for: "f-queues" }, "Queues the agent may hand to"), queues,
      h("p", { class: "hint" }, "Queue ids separated by commas; the first is the default. Empty: the default queue."), fieldError("queues")),
    h("div", { class: "field" }, h("label", { for: "f-out-of-hours" }, "Outside opening hours"), outOfHours, fieldError("out_of_hours")),
    h("div", { class: "field" }, h("div", { class: "label-row" }, h("label", { for: "f-waiting" }, "Waiting message"), counter(waiting, noticeChars)), waiting,
      h("p", { class: "hint" }, "May use {position}, {eta_minutes} and {opens_at}. Empty: the built-in sentence."), fieldError("waiting_notice_text")),
    h("div", { class: "field" }, h("div", { class: "label-row" }, h("label", { for: "f-return" }, "Message when the AI takes over again"), counter(returning, noticeChars)), returning, fieldError("return_notice_text")),
    // Only the "has joined" message: the web chat names who is answering whatever this says.
    h("div", { class: "field toggle" }, announce, h("label", { for: "f-announce" }, "Send the user a message when a teammate takes the conversation"),
      h("p", { class: "hint", id: "f-announce-hint" }, "The message names them: “Sam from our team has joined the conversation.” The web chat shows who is answering, by name, either way."),
      fieldError("announce_teammate")),
    errors,
    canWrite
      ? h("div", { class: "form-actions" },
          h("button", { type: "submit", class: "button primary", id: "apply" }, "Apply"),
          h("button", { type: "submit", class: "button secondary", id: "apply-publish", dataset: { publish: "1" } }, "Apply and publish"),
          h("span", { class: "hint" }, "Apply creates a new version; the live one changes only when you publish."))
      : h("p", { class: "hint" }, "You can read these settings; changing them needs the editor role."));
    clear(formBox, form);
  }

  function renderVersions() {
    if (!agent.versions.length) {
      clear(versionsBox, h("h2", {}, "Versions"), h("p", { class: "empty" }, "No versions yet. Apply the settings to create version 1."));
      return;
    }
    clear(versionsBox, h("h2", {}, "Versions"),
      h("ol", { class: "version-list" }, agent.versions.map((v) => h("li", {
        class: `version-item ${v.published ? "is-published" : ""} ${editing && editing.version === v.version ? "is-editing" : ""}`,
        dataset: { version: v.version },
      },
      h("div", { class: "version-main" },
        h("button", { type: "button", class: "link version-name", title: "Load into the form", onclick: () => { editing = v; renderForm(); renderVersions(); } }, `Version ${v.version}`),
        v.published ? h("span", { class: "badge live" }, "Live") : null,
        h("div", { class: "muted small" }, summary(v)),
        changesText(v),
        h("div", { class: "muted small" }, `${when(v.created_at)} · ${v.created_by}`)),
      canWrite && !v.published
        ? h("button", { type: "button", class: "button secondary small", "data-action": "publish", onclick: () => publish(v.version) }, "Publish")
        : null))));
  }

  // What a version changed against the one before it (the list shows every kind of change).
  function changesText(v) {
    const before = agent.versions.find((o) => o.version === v.version - 1);
    if (!before) return null;
    const changed = handoffDiff(before.handoff, v.handoff).map((c) => c.label);
    return h("div", { class: "muted small version-changes" }, changed.length ? `Changed: ${changed.join(", ")}` : "No change");
  }

  async function publish(n) {
    const v = agent.versions.find((o) => o.version === n);
    const live = agent.versions.find((o) => o.published);
    const ok = await confirmPublish(live, v.handoff, `Publish version ${n}?`, `Version ${n}`, `Publish version ${n}`);
    if (!ok) return;
    try {
      await post(`${paths.agent(session.tenant, agentId)}/versions/${n}/publish`);
      toast(`Version ${n} is live.`, "success");
      await load(n);
      document.getElementById("published-label").focus(); // its Publish button is gone
    } catch (err) {
      toast(said(err), "error");
    }
  }

  load();
  return { title: agentId, el };
}
