// Queues (R14-R18): the tenant's queues, one queue's live view (waiting and assigned tickets,
// oldest first) and its settings (hours, closed dates, pickup target).

import { get, paths, post, put } from "./api.js";
import { ago, clear, duration, h, loading, plural, said, saidBox, toast, when } from "./ui.js";
import { userHref } from "./user.js";

const DAYS = [["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"]];
const NO_PICKUP = {
  wait: "Keep waiting (only announce it)",
  notify: "Tell the user again",
  back_to_ai: "Give the user back to the AI",
};
const QUEUE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const queueHref = (q) => `#/queues/${encodeURIComponent(q)}`;

export function queuesPage(session) {
  const list = h("ul", { class: "queue-list", id: "queue-list" }, h("li", {}, loading()));
  const name = h("input", { id: "new-queue", name: "queue", required: true, placeholder: "billing", pattern: QUEUE_ID.source, maxlength: 128, autocomplete: "off" });
  const el = h("div", { class: "page narrow-page" },
    h("div", { class: "page-head" }, h("h1", {}, "Queues")),
    h("section", { class: "card" },
      h("h2", {}, "Lines tickets wait in"),
      h("p", { class: "muted small" }, "An agent's version names the queues it may hand to; the first is its default. A queue never configured is open around the clock, with no pickup target."),
      list),
    session.can_write
      ? h("form", {
          class: "card",
          id: "new-queue-form",
          onsubmit: (e) => {
            e.preventDefault();
            const q = name.value.trim();
            if (!QUEUE_ID.test(q)) {
              toast("A queue id is letters, digits, dots, dashes and underscores.", "error");
              return;
            }
            location.hash = queueHref(q);
          },
        },
        h("h2", {}, "New queue"),
        h("div", { class: "row" },
          h("div", { class: "field grow" }, h("label", { for: "new-queue" }, "Queue id"), name),
          h("button", { type: "submit", class: "button primary" }, "Set up")))
      : null);

  get(paths.queues(session.tenant))
    .then((page) => {
      clear(list, page.items.map((q) => h("li", { dataset: { queue: q.queue } },
        h("div", {},
          h("a", { class: "queue-name", href: queueHref(q.queue) }, q.settings.display_name || q.queue),
          q.settings.display_name ? h("span", { class: "muted" }, ` ${q.queue}`) : null),
        h("div", { class: "muted small" },
          q.configured ? `${q.settings.timezone} · ${q.settings.pickup_minutes ? `pickup within ${q.settings.pickup_minutes} min` : "no pickup target"}` : "not configured: defaults"))));
    })
    .catch((err) => clear(list, h("li", {}, saidBox(err))));
  return { title: "Queues", el };
}

export function queuePage(session, q) {
  const statusBox = h("div", { class: "figures", id: "queue-status" }, loading());
  const ticketsBox = h("div", { id: "queue-tickets" }, loading());
  const formBox = h("div", {}, loading());
  const title = h("h1", {}, q);
  const el = h("div", { class: "page" },
    h("div", { class: "page-head" },
      h("div", {}, h("div", { class: "crumbs" }, h("a", { href: "#/queues" }, "Queues"), " / ", q), title)),
    statusBox,
    h("div", { class: "split" },
      h("section", { class: "card" }, h("h2", {}, "Waiting and assigned, oldest first"), ticketsBox),
      h("section", { class: "card settings" }, h("h2", {}, "Settings"), formBox)));

  async function refresh() {
    try {
      const [queue, tickets] = await Promise.all([get(paths.queue(session.tenant, q)), get(`${paths.queue(session.tenant, q)}/tickets`)]);
      title.textContent = queue.settings.display_name || q;
      renderStatus(queue.status);
      renderTickets(tickets.items);
      return queue;
    } catch (err) {
      clear(statusBox, saidBox(err));
      return null;
    }
  }

  function renderStatus(s) {
    const fig = (name, label, value, note) => h("div", { class: "figure card", dataset: { figure: name } },
      h("div", { class: "figure-label" }, label), h("div", { class: "figure-value" }, value), note ? h("div", { class: "muted small" }, note) : null);
    clear(statusBox,
      fig("waiting", "Waiting", String(s.waiting), `${s.assigned} assigned`),
      fig("oldest", "Oldest wait", duration(s.oldest_wait_seconds)),
      fig("pickup", "Pickup (last hour)", duration(s.pickup_p50_seconds), s.pickups_last_hour
        ? `median · 90 % within ${duration(s.pickup_p90_seconds)} · ${plural(s.pickups_last_hour, "pickup")}`
        : "no pickups in the last hour"),
      fig("online", "Teammates online", String(s.teammates_online)),
      fig("open", "Open now", s.open_now ? "Yes" : "No", s.open_now ? null : s.next_opening_text ? `opens ${s.next_opening_text}` : "no opening ahead"));
  }

  function renderTickets(items) {
    if (!items.length) {
      clear(ticketsBox, h("p", { class: "empty" }, "Nobody is waiting in this queue."));
      return;
    }
    clear(ticketsBox, h("table", { class: "tickets" },
      h("thead", {}, h("tr", {}, ["#", "User", "Status", "Owner", "Waiting", "Reason", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, items.map((t) => h("tr", { dataset: { ticket: t.ticket_id, status: t.status } },
        h("td", { class: "position" }, t.position ?? "—"),
        h("td", {}, h("a", { href: userHref(t.channel, t.external_id) }, t.external_id), h("div", { class: "muted small" }, `${t.agent_id} · ${t.channel}`)),
        h("td", {}, h("span", { class: `status-chip status-${t.status}` }, t.status === "queued" ? "Waiting" : "Assigned"), t.pickup_overdue ? h("div", { class: "muted small" }, "past pickup target") : null),
        h("td", {}, t.assignee_name || t.assignee || h("span", { class: "muted" }, "nobody")),
        h("td", { class: "waiting", title: when(t.created_at) }, duration(t.waiting_seconds)),
        h("td", { class: "reason-cell" }, t.reason || "—"),
        h("td", {}, session.can_write && t.status === "queued"
          ? h("button", { type: "button", class: "button small primary", dataset: { action: "claim" }, onclick: (e) => claim(t, e.target) }, "Claim")
          : null))))));
  }

  async function claim(t, button) {
    button.disabled = true;
    try {
      await post(`${paths.ticket(session.tenant, t.ticket_id)}/claim`, {});
      toast(`${t.external_id} is yours now.`, "success");
    } catch (err) {
      toast(said(err), "error");
    }
    await refresh();
  }

  refresh().then((queue) => {
    if (queue) clear(formBox, settingsForm(session, q, queue, refresh));
  });
  const timer = setInterval(refresh, 5000);
  return { title: `Queue ${q}`, el, cleanup: () => clearInterval(timer) };
}

function settingsForm(session, q, queue, refresh) {
  const s = queue.settings;
  const disabled = !session.can_write;
  let version = queue.version;
  const input = (id, attrs) => h("input", { id, name: id, disabled, ...attrs });
  const displayName = input("queue-display-name", { value: s.display_name, maxlength: 200, placeholder: q });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const timezone = input("queue-timezone", { value: s.timezone, list: "timezones", required: true, autocomplete: "off" });
  const allDay = h("input", { type: "checkbox", role: "switch", id: "queue-always-open", disabled, checked: s.hours === null });
  const dayInputs = Object.fromEntries(DAYS.map(([d]) => [d, input(`queue-hours-${d}`, { value: s.hours ? (s.hours[d] || []).join(", ") : "", placeholder: "closed, or e.g. 09:00-17:00, 18:00-20:00" })]));
  const hoursGrid = h("div", { class: "hours-grid", id: "queue-hours" }, DAYS.map(([d, label]) => [h("label", { for: `queue-hours-${d}` }, label), dayInputs[d]]));
  const syncHours = () => { hoursGrid.hidden = allDay.checked; };
  allDay.addEventListener("change", syncHours);
  syncHours();
  const closed = h("textarea", { id: "queue-closed-dates", rows: 3, disabled, placeholder: "2026-12-24\n2026-12-25" }, s.closed_dates.join("\n"));
  const pickup = input("queue-pickup-minutes", { type: "number", min: session.limits.pickup_target_minutes.min, max: session.limits.pickup_target_minutes.max, value: s.pickup_minutes ?? "", placeholder: "no target" });
  const onNoPickup = h("select", { id: "queue-on-no-pickup", disabled }, Object.entries(NO_PICKUP).map(([v, label]) => h("option", { value: v, selected: v === s.on_no_pickup }, label)));
  const status = h("div", { class: "form-status" });
  const save = h("button", { type: "submit", class: "button primary", id: "queue-save", disabled }, queue.configured ? "Save" : "Create queue");

  const field = (id, label, control, hint) => h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("p", { class: "hint" }, hint) : null);
  return h("form", {
    id: "queue-form",
    onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      const hours = allDay.checked ? null : Object.fromEntries(DAYS
        .map(([d]) => [d, dayInputs[d].value.split(",").map((r) => r.trim()).filter(Boolean)])
        .filter(([, ranges]) => ranges.length));
      const body = {
        display_name: displayName.value.trim(),
        timezone: timezone.value.trim(),
        hours,
        closed_dates: closed.value.split(/\s+/).filter(Boolean),
        pickup_minutes: pickup.value ? Number(pickup.value) : null,
        on_no_pickup: onNoPickup.value,
        version,
      };
      save.disabled = true;
      try {
        const saved = await put(paths.queue(session.tenant, q), body);
        version = saved.version;
        save.textContent = "Save";
        toast(`Queue ${q} saved.`, "success");
        await refresh();
      } catch (err) {
        status.replaceChildren(saidBox(err));
      } finally {
        save.disabled = false;
      }
    },
  },
  h("datalist", { id: "timezones" }, zones.map((z) => h("option", { value: z }))),
  field("queue-display-name", "Display name", displayName, "How teammates and users see the queue."),
  field("queue-timezone", "Time zone", timezone, "IANA name, e.g. Europe/Berlin. Hours and closed dates are in this zone."),
  h("div", { class: "field toggle" }, allDay, h("label", { for: "queue-always-open" }, "Open around the clock")),
  hoursGrid,
  field("queue-closed-dates", "Closed dates", closed, "One date a line (YYYY-MM-DD): closed all day."),
  field("queue-pickup-minutes", "Pickup target (minutes)", pickup, "Empty: no target."),
  field("queue-on-no-pickup", "When nobody picks up in time", onNoPickup),
  status,
  h("div", { class: "form-actions" }, save, queue.updated_at ? h("span", { class: "hint" }, `Version ${queue.version}, by ${queue.updated_by} ${ago(queue.updated_at)}`) : null));
}
