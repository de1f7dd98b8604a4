// The page's dialogs: the token prompt, the confirmation every action asks
// for, and the banner that reports how an action went.

import { request, token, setToken, ApiError } from "./api.js";
import { h } from "./dom.js";
import { refresh } from "./poller.js";

const $ = (id) => document.getElementById(id);

// Set once a token was refused an admin action, until the token changes:
// admin buttons then say that they need another token.
export const access = { adminDenied: false };

export function banner(message, kind = "error", extra) {
  const el = $("banner");
  el.className = `banner ${kind}`;
  el.replaceChildren(
    h("span", { class: "banner-text", role: kind === "error" ? "alert" : "status" }, message),
    extra ?? "",
    h("button", { type: "button", class: "ghost", "aria-label": "Dismiss", onclick: () => (el.hidden = true) }, "×"),
  );
  el.hidden = false;
}

export function hideBanner() {
  $("banner").hidden = true;
}

let tokenOpen = false;

// Ask for a token; it is tried on `GET /plugins` before it is kept, so a
// wrong one is refused here and not by every later request.
export function askToken(reason) {
  // Polling goes on while the prompt is open: a later 401 must not wipe
  // what the user is typing.
  if (tokenOpen) return;
  tokenOpen = true;
  const dialog = $("token-dialog");
  $("token-reason").textContent = reason ?? "Enter a bearer token for this server.";
  $("token-error").hidden = true;
  $("token-input").value = "";
  $("token-remember").checked = !!localStorage.getItem("prism.token");
  $("token-forget").hidden = !token();
  dialog.showModal();
  $("token-input").focus();
}

export function setupTokenDialog() {
  const dialog = $("token-dialog");
  const error = (text) => {
    $("token-error").textContent = text;
    $("token-error").hidden = false;
  };
  dialog.addEventListener("close", () => (tokenOpen = false));
  $("token-cancel").addEventListener("click", () => dialog.close());
  $("token-forget").addEventListener("click", () => {
    setToken("");
    dialog.close();
    refresh();
  });
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = $("token-input").value.trim();
    if (!candidate) return error("Enter a token.");
    $("token-submit").disabled = true;
    try {
      await request("GET", "/plugins", { tokenOverride: candidate, silent401: true });
      setToken(candidate, $("token-remember").checked);
      access.adminDenied = false;
      dialog.close();
      hideBanner();
      refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) error("This token was refused (401): the server does not know it.");
      else if (e instanceof ApiError && e.status === 403)
        error("This token is known but may not read plugin status (403): it needs the read scope.");
      else error(e.explain ? e.explain() : String(e));
    } finally {
      $("token-submit").disabled = false;
    }
  });
}

// Ask before doing anything; resolves to true on "confirm".
export function confirm(title, body, { okLabel = "Confirm", danger = false } = {}) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-body").replaceChildren(...(Array.isArray(body) ? body : [body]).map((b) => (typeof b === "string" ? h("p", {}, b) : b)));
  const ok = $("confirm-ok");
  ok.textContent = okLabel;
  ok.className = danger ? "danger" : "";
  dialog.returnValue = "";
  dialog.showModal();
  ok.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// Confirm, send, report. `what` is the request; resolves to the response
// body, or null when cancelled or refused.
export async function act({ title, body, okLabel, danger, method, path, upload, done }) {
  if (!(await confirm(title, body, { okLabel, danger }))) return null;
  banner(`${title}…`, "info");
  try {
    const response = await request(method, path, { body: upload });
    banner(done ?? `${title}: done.`, "ok");
    refresh();
    return response.body ?? {};
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) {
      access.adminDenied = true;
      banner(
        e.explain(),
        "error",
        h("button", { type: "button", onclick: () => askToken("Enter a token with the admin scope.") }, "Use another token"),
      );
    } else {
      banner(`${title} failed: ${e.explain ? e.explain() : e}`, "error");
    }
    refresh();
    return null;
  }
}
