// Calls from staff pages to the server with the session cookie and the session's CSRF token.
// The token comes from <meta name="csrf-token"> (rendered by the server); every state-changing
// request sends it as X-CSRF-Token. Errors come back as ApiError with the server's code.

import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** The session's CSRF token from the page, or "" when the page has none. */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") || "" : "";
}

/**
 * One request. `body` (an object) is sent as JSON. Resolves with the parsed JSON body (or the raw
 * Response when `raw` is true, or null for 204); rejects with ApiError.
 */
export async function request(method, path, { body, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network", String(err));
  }
  if (!response.ok) {
    let code = "http_" + response.status;
    let message = "";
    try {
      const data = await response.json();
      if (data && data.error) ({ code, message } = data.error);
    } catch {
      /* not JSON: keep the status code */
    }
    throw new ApiError(response.status, code, message);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

// Server error codes → plain-language text (German first, via the catalogs).
const MESSAGES = {
  network: "console.error.network",
  unauthenticated: "console.error.session",
  session_expired: "console.error.session",
  csrf_failed: "console.error.session",
  forbidden: "console.error.forbidden",
  not_found: "console.error.not_found",
  room_ended: "console.error.room_ended",
  room_over: "invite.error.room_over",
  invalid_title: "console.error.title",
  invalid_schedule: "console.error.schedule",
  invalid_name: "invite.error.name",
  token_revoked: "invite.error.revoked",
  invalid_email: "invite.error.email",
  schedule_required: "invite.error.email_schedule",
  email_not_configured: "invite.error.email_off",
};

/** A sentence for a person about what went wrong. */
export function errorText(err) {
  const key = err && MESSAGES[err.code];
  if (key) return t(key);
  if (err && err.code === "invalid_request" && err.message && err.message.includes("title")) {
    return t("console.error.title");
  }
  return t("console.error.generic");
}
