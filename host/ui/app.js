// The dashboard's entry point: the pages behind the URL's fragment
// (#/, #/plugins/NAME, #/views/NAME, #/log), the header's live status, the
// colour theme, and the token prompt whenever the server answers 401.

import { onUnauthorized, onTokenChange, token } from "./api.js";
import { h, show, fmtNum, fmtRate, fmtTime } from "./dom.js";
import { setupTokenDialog, askToken, access } from "./dialogs.js";
import { store, subscribe, refresh } from "./poller.js";
import * as overview from "./overview.js";
import * as plugin from "./plugin.js";
import * as views from "./views.js";
import * as log from "./log.js";

const main = document.getElementById("main");
let page = null;

// "#/views/orders?prefix=a" → {parts: ["views", "orders"], query: URLSearchParams}
function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query ?? "") };
}

function mount() {
  page?.unmount?.();
  const { parts, query } = route();
  let module = overview;
  let nav = "overview";
  if (parts[0] === "plugins" && parts[1]) module = plugin;
  else if (parts[0] === "views") [module, nav] = [views, "views"];
  else if (parts[0] === "log") [module, nav] = [log, "log"];
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === nav);
  }
  main.replaceChildren();
  page = module.mount(main, parts.slice(1), query);
  window.scrollTo(0, 0);
}

function topStatus() {
  const el = document.getElementById("top-status");
  const health = store.health;
  const parts = [];
  if (health) {
    parts.push(
      h("span", { class: `badge health-${health.status}`, id: "health" }, health.status),
      h("span", { id: "log-head" }, `head ${fmtNum(health.head)}`),
      h("span", { id: "append-rate" }, `${fmtRate(store.appendRate)} appended`),
    );
  }
  if (store.error) {
    parts.push(h("span", { class: "error" }, store.error.status === 0 ? "server unreachable" : `${store.error.status} ${store.error.code}`));
  } else if (store.updatedAt) {
    parts.push(h("span", { class: "muted" }, `updated ${fmtTime(store.updatedAt)}`));
  }
  show(el, ...parts);
  document.getElementById("token-button").textContent = token() ? "Token ✓" : "Token";
}

// Auto follows the system; the button cycles auto → dark → light.
const THEMES = ["auto", "dark", "light"];
function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  document.getElementById("theme-button").textContent = `Theme: ${theme}`;
}

function setupTheme() {
  let theme = localStorage.getItem("prism.theme") ?? "auto";
  applyTheme(theme);
  document.getElementById("theme-button").addEventListener("click", () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    localStorage.setItem("prism.theme", theme);
    applyTheme(theme);
  });
}

setupTheme();
setupTokenDialog();
document.getElementById("token-button").addEventListener("click", () => askToken());
onUnauthorized(() =>
  askToken(token() ? "The server refused the token this page had (401). Enter another." : "This server needs a bearer token (401)."),
);
onTokenChange(() => {
  access.adminDenied = false;
  topStatus();
});
subscribe(() => {
  topStatus();
  page?.update?.();
});
window.addEventListener("hashchange", mount);
mount();
refresh();
