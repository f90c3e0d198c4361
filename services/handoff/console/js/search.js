// Ctrl+K / Cmd+K on the desk (issue 14): a search over users and conversations in a modal
// dialog. The focus goes into the search box, stays in the dialog (Tab cycles), and goes back
// where it was on Escape; choosing a result opens it. `find(query)` gives the results:
// [{id, label, detail, choose()}].

import { clear, h } from "./ui.js";

export function openSearch(find) {
  const opener = document.activeElement;
  const input = h("input", {
    id: "search-input",
    type: "text", // not "search": its Escape clears the text instead of closing the dialog
    role: "combobox",
    "aria-expanded": "false",
    "aria-controls": "search-results",
    "aria-autocomplete": "list",
    "aria-label": "Search users and conversations",
    placeholder: "Search users and conversations…",
    autocomplete: "off",
  });
  const results = h("ul", { id: "search-results", class: "search-results", role: "listbox", "aria-label": "Results" });
  const status = h("p", { class: "muted small", "aria-live": "polite" });
  const closeButton = h("button", { type: "button", class: "button secondary", onclick: () => close(true) }, "Close");
  const dialog = h("dialog", { class: "dialog search-dialog", id: "search-dialog", "aria-labelledby": "search-title" },
    h("div", { class: "dialog-form" }, h("h2", { id: "search-title" }, "Search"), input, status, results,
      h("div", { class: "dialog-actions" }, closeButton)));
  let found = [];
  let active = 0;
  let serial = 0;

  function close(restore) {
    dialog.close();
    dialog.remove();
    if (restore && opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
  }
  function render() {
    clear(results, found.map((r, i) => h("li", {
      role: "option",
      id: `search-option-${i}`,
      class: `search-result ${i === active ? "active" : ""}`,
      "aria-selected": i === active ? "true" : "false",
      onclick: () => pick(i),
    }, h("span", { class: "search-label" }, r.label), h("span", { class: "search-detail" }, r.detail))));
    input.setAttribute("aria-expanded", found.length ? "true" : "false");
    if (found.length) input.setAttribute("aria-activedescendant", `search-option-${active}`);
    else input.removeAttribute("aria-activedescendant");
  }
  function pick(i) {
    const r = found[i];
    if (!r) return;
    close(false);
    r.choose();
  }
  input.addEventListener("input", async () => {
    const query = input.value.trim();
    const mine = ++serial;
    const items = query ? await find(query) : [];
    if (mine !== serial) return; // a later query answered first
    found = items;
    active = 0;
    render();
    status.textContent = query ? (found.length ? `${found.length} found` : "Nothing found.") : "";
  });
  dialog.addEventListener("keydown", (e) => {
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && found.length) {
      active = (active + (e.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      render();
    } else if (e.key === "Enter" && e.target === input) {
      pick(active);
    } else if (e.key === "Tab") { // the focus stays in the dialog
      const stops = [...dialog.querySelectorAll("input, button")];
      const at = stops.indexOf(document.activeElement);
      stops[(at + (e.shiftKey ? stops.length - 1 : 1)) % stops.length].focus();
    } else return;
    e.preventDefault();
  });
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    close(true);
  });
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}
