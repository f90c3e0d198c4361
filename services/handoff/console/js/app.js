// The console shell: sign-in with a pasted token, the top bar, and a hash router.

import { get, sessionStarted, token, whenUnauthorized } from "./api.js";
import { clear, h, errorBox, said } from "./ui.js";
import { lookupPage, userPage } from "./user.js";
import { agentLookupPage, agentPage } from "./agent.js";
import { deskCountKey, deskPage, showDeskCount } from "./desk.js";
import { queuePage, queuesPage } from "./queues.js";
import { analyticsPage } from "./analytics.js";

const main = () => document.getElementById("main");
let session = null;
let cleanup = null; // what the current page must stop (timers, streams) when left

const routes = [
  [/^#\/users\/([^/]+)\/(.+)$/, (m) => userPage(session, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/users\/?$/, () => lookupPage(session)],
  [/^#\/agents\/([^/]+)$/, (m) => agentPage(session, decodeURIComponent(m[1]))],
  [/^#\/agents\/?$/, () => agentLookupPage(session)],
  [/^#\/desk\/?(\?.*)?$/, () => deskPage(session)],
  [/^#\/queues\/([^/]+)$/, (m) => queuePage(session, decodeURIComponent(m[1]))],
  [/^#\/queues\/?$/, () => queuesPage(session)],
  [/^#\/analytics\/?$/, () => analyticsPage(session)],
];

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!session) return;
  const hash = location.hash || "#/users";
  showDeskCount(session);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", hash.startsWith(`#/${link.dataset.nav}`));
  }
  for (const [pattern, page] of routes) {
    const m = hash.match(pattern);
    if (m) {
      const view = page(m);
      clear(main(), view.el);
      cleanup = view.cleanup || null;
      document.title = `${view.title} · Handoff`;
      return;
    }
  }
  location.hash = "#/users";
}

function showSignIn(message) {
  session = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const input = h("textarea", {
    id: "token-input",
    name: "token",
    rows: 5,
    required: true,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: "eyJhbGciOiJIUzI1NiIs…",
  });
  const status = h("div", { class: "signin-status" }, message ? errorBox({ message }) : null);
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        token.set(input.value);
        status.replaceChildren();
        await start(status);
      },
    },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste your operator token. Every tab of this browser uses it until you sign out or it expires."),
    h("label", { for: "token-input" }, "Operator token"),
    input,
    status,
    h("button", { type: "submit", class: "button primary wide" }, "Continue"),
    h("p", { class: "hint" }, "Running locally? ", h("code", {}, "make token TENANT=acme ROLE=editor"), " prints one."),
  );
  clear(main(), h("div", { class: "signin-wrap" }, form));
  document.title = "Sign in · Handoff";
  input.focus();
}

async function start(status) {
  if (!token.get()) return showSignIn();
  sessionStarted();
  try {
    session = await get("/v1/session");
    // The bounds every form checks, from the one table the API checks them with.
    session.limits = await get("/v1/limits");
  } catch (err) {
    token.clear();
    if (status && err.status !== 401) status.replaceChildren(errorBox(err));
    else showSignIn(err.code === "token_expired" ? "That token has expired. Make a new one and paste it here." : err.status === 401 ? "That token was refused: copy it again, whole, or make a new one." : said(err));
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("who-tenant").textContent = session.tenant;
  document.getElementById("who-operator").textContent = session.sub;
  const role = document.getElementById("who-role");
  role.textContent = session.role;
  role.className = `role role-${session.role}`;
  document.body.dataset.role = session.role;
  await render();
}

whenUnauthorized(() => {
  token.clear();
  if (cleanup) cleanup();
  cleanup = null;
  showSignIn("Your session expired — sign in again.");
});

// Another tab signed in or out: this one follows.
window.addEventListener("storage", (event) => {
  if (session && event.key === deskCountKey(session)) return void showDeskCount(session); // a desk in another tab
  if (event.key !== token.key) return;
  if (event.newValue) {
    if (!session) start();
  } else if (session) {
    if (cleanup) cleanup();
    cleanup = null;
    showSignIn();
  }
});

window.addEventListener("hashchange", render);
document.getElementById("sign-out").addEventListener("click", () => {
  token.clear();
  if (cleanup) cleanup();
  cleanup = null;
  showSignIn();
});

start();
