// The in-room view's frame: screens, status line, announcements, controls, confirmation, end screen.
//
// Only DOM work lives here (room.js decides what happens); tiles are tiles.js, the drawer
// drawer.js, the people pane moderation.js, the chat log chatview.js. Every text comes from the
// i18n catalogs and goes in as text. The page's state is mirrored on <body data-room-state>
// (connecting, waiting, in-call, reconnecting, ended, removed, denied, left, replaced, error).

import { el } from "./dom.js";
import { t } from "./i18n.js";

const SCREENS = ["connecting", "waiting", "call", "end"];
const ROLES = ["counsellor", "citizen", "expert", "interpreter"];
// Refusals that mean "this is not a valid link of ours" share one plain message.
const TOKEN_INVALID = new Set(["token_malformed", "token_bad_signature", "token_unknown_kid",
  "token_algorithm_not_allowed", "token_wrong_issuer", "token_wrong_audience"]);

export function roleLabel(role) {
  return ROLES.includes(role) ? t(`room.role.${role}`) : t("room.role.unknown");
}

/** A name inside a sentence, isolated for direction (FSI … PDI): it never reorders the words around it. */
export function isolate(name) {
  return `\u2068${name}\u2069`;
}

export class RoomView {
  constructor() {
    this.$ = (id) => document.getElementById(id);
    this.lastAnnouncement = "";
    this.baseTitle = document.title;
  }

  // -- screens and states --------------------------------------------------------

  setState(state) {
    document.body.dataset.roomState = state;
  }

  get state() {
    return document.body.dataset.roomState;
  }

  /** Show one screen; with `focus`, its heading takes the focus (read out; the next Tab is its first control). */
  showScreen(name, { focus = true } = {}) {
    for (const screen of SCREENS) {
      const section = this.$(`screen-${screen}`);
      if (section) section.hidden = screen !== name;
    }
    if (focus) this.$(`screen-${name}`)?.querySelector("h1[tabindex]")?.focus({ preventScroll: true });
  }

  /** The visible status line (also read out: it is a polite status region). */
  status(text, kind = "info") {
    const box = this.$("status");
    box.textContent = text || "";
    box.dataset.kind = kind;
    box.hidden = !text;
  }

  /** Read a state change out to screen readers (polite), without moving focus. */
  announce(text) {
    if (!text) return;
    const region = this.$("announcer");
    // Same text twice in a row is announced again.
    region.textContent = text === this.lastAnnouncement ? `${text}\u00a0` : text;
    this.lastAnnouncement = region.textContent;
  }

  setRoomTitle(title) {
    this.$("room-title").textContent = title || "";
    const waiting = this.$("waiting-room-name");
    if (waiting) waiting.textContent = title ? t("room.waiting.room", { title }) : "";
    if (title) this.baseTitle = `${title} – ${t("room.title")}`;
    document.title = this.baseTitle;
  }

  /** "(2) …" in the tab's title while people wait: seen from another tab or window. */
  setTitleCount(count) {
    document.title = count ? `(${count}) ${this.baseTitle}` : this.baseTitle;
  }

  /**
   * The end screen. `prefix` names the texts that fit the person (staff.end.host.<kind>, …); without
   * one, or where it has no text, the general room.end.<kind> (room.error.<code>) texts are shown.
   * `actions`: [{text, href} | {text, onClick}], the first one primary.
   */
  showEnd(kind, code = null, { prefix = null, actions = [] } = {}) {
    this.setState(kind);
    const shown = TOKEN_INVALID.has(code) ? "token_invalid" : code || "unknown";
    const keys = [prefix, kind === "error" ? `room.error.${shown}` : `room.end.${kind}`, "room.error.unknown"];
    const pick = (suffix) => {
      for (const key of keys) {
        if (!key) continue;
        const text = t(`${key}.${suffix}`);
        if (text !== `${key}.${suffix}`) return text;
      }
      return "";
    };
    this.$("end-title").textContent = pick("title");
    this.$("end-text").textContent = pick("text");
    this.$("end-code").textContent = code && kind === "error" ? t("room.error.code", { code }) : "";
    document.body.dataset.errorCode = code || "";
    const box = this.$("end-actions");
    box.replaceChildren(...actions.map((action, i) => {
      const cls = i === 0 ? "button button-primary" : "button";
      if (action.href) return el("a", { class: cls, href: action.href, "data-action": action.id, text: action.text });
      const button = el("button", { type: "button", class: cls, "data-action": action.id, text: action.text });
      button.addEventListener("click", action.onClick);
      return button;
    }));
    this.status("");
    this.setTitleCount(0);
    this.showScreen("end");
    const dialog = this.$("confirm");
    if (dialog.open) dialog.close("cancel");
  }

  // -- controls ---------------------------------------------------------------------

  onControl(name, handler) {
    this.$(`ctl-${name}`)?.addEventListener("click", handler);
  }

  showControl(name, show) {
    const button = this.$(`ctl-${name}`);
    if (button) button.hidden = !show;
  }

  setToggle(name, pressed) {
    this.$(`ctl-${name}`)?.setAttribute("aria-pressed", pressed ? "true" : "false");
  }

  setControlDisabled(name, disabled) {
    const button = this.$(`ctl-${name}`);
    if (button) button.disabled = Boolean(disabled);
  }

  /** A count on a control (people waiting, unread messages); `label` says it in words for a screen reader. */
  setBadge(name, count, label) {
    const badge = this.$(`${name}-badge`);
    if (!badge) return;
    badge.replaceChildren();
    if (count > 0) {
      badge.append(el("span", { "aria-hidden": "true", text: String(count) }),
        el("span", { class: "visually-hidden", text: ` (${label})` }));
    }
  }

  mediaProblem(text) {
    const box = this.$("media-problem");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // -- confirmation -------------------------------------------------------------------

  /** A modal confirmation (<dialog>); resolves true when confirmed. The focus goes back to the opener. */
  confirm({ title, text, ok }) {
    const dialog = this.$("confirm");
    this.$("confirm-title").textContent = title;
    this.$("confirm-text").textContent = text;
    this.$("confirm-ok").textContent = ok;
    const opener = document.activeElement;
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "ok");
        if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      };
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      dialog.showModal();
      this.$("confirm-cancel").focus(); // the safe choice is the default
    });
  }
}
