// The counsellor's "people" pane: the waiting room (admit, turn away) and who is in the call
// (remove a citizen; release an expert or interpreter, who then is free at the desk again).
//
// When an entry the focus was on goes away (admitted, turned away, gone), the focus moves to
// the next waiting person's "admit", else to the list's heading: never to the page's start.

import { el } from "./dom.js";
import { t } from "./i18n.js";

const RELEASED_ROLES = new Set(["expert", "interpreter"]);

function timeOf(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString(document.documentElement.lang || "de", { hour: "2-digit", minute: "2-digit" });
}

export class Moderation {
  /**
   * @param {object} o
   * @param {(role: string) => string} o.roleLabel
   * @param {(entry) => void} o.onAdmit
   * @param {(entry) => void} o.onDeny
   * @param {(person) => void} o.onRemove   citizens (and anyone not released)
   * @param {(person) => void} o.onRelease  experts and interpreters
   */
  constructor({ roleLabel, onAdmit, onDeny, onRemove, onRelease }) {
    this.$ = (id) => document.getElementById(id);
    this.roleLabel = roleLabel;
    this.onAdmit = onAdmit;
    this.onDeny = onDeny;
    this.onRemove = onRemove;
    this.onRelease = onRelease;
  }

  /** The waiting room: [{id, name, role, since}]. */
  renderLobby(waiting) {
    const list = this.$("lobby");
    const active = document.activeElement;
    const hadFocus = list.contains(active);
    const focusedPeer = hadFocus ? active.dataset.peer : null;
    const focusedKind = hadFocus ? active.dataset.kind : null;
    list.replaceChildren();
    this.$("lobby-empty").hidden = waiting.length > 0;
    for (const entry of waiting) {
      const admit = el("button", { type: "button", class: "button-primary button-small admit", "data-peer": entry.id,
        "data-kind": "admit", text: t("room.lobby.admit"), "aria-label": t("room.lobby.admit_label", { name: entry.name }) });
      const deny = el("button", { type: "button", class: "button-danger button-small deny", "data-peer": entry.id,
        "data-kind": "deny", text: t("room.lobby.deny"), "aria-label": t("room.lobby.deny_label", { name: entry.name }) });
      // Sent once; aria-disabled (not disabled) keeps the focus here until the list changes.
      const act = (handler) => () => {
        if (admit.getAttribute("aria-disabled") === "true") return;
        admit.setAttribute("aria-disabled", "true");
        deny.setAttribute("aria-disabled", "true");
        handler(entry);
      };
      admit.addEventListener("click", act(this.onAdmit));
      deny.addEventListener("click", act(this.onDeny));
      const since = timeOf(entry.since);
      list.append(el("li", { class: "lobby-entry", "data-peer": entry.id },
        el("bdi", { class: "person-name", text: entry.name }),
        el("span", { class: "person-role", text: this.roleLabel(entry.role) }),
        since ? el("span", { class: "person-since", text: t("room.lobby.since", { time: since }) }) : null,
        el("span", { class: "lobby-buttons" }, admit, deny)));
    }
    const first = list.querySelector("button.admit");
    for (const button of list.querySelectorAll("[data-autofocus]")) button.removeAttribute("data-autofocus");
    first?.setAttribute("data-autofocus", "");
    if (hadFocus) {
      const same = focusedPeer && list.querySelector(`button[data-peer="${CSS.escape(focusedPeer)}"][data-kind="${focusedKind}"]`);
      const target = same && same.getAttribute("aria-disabled") !== "true" ? same : first || this.$("lobby-title");
      target.focus({ preventScroll: true });
    }
  }

  /** Who is in the call: self first, then the peers, with role, connection and the action that fits. */
  renderPeople(self, peers, connectionOf) {
    const list = this.$("people");
    const active = document.activeElement;
    const focusedPeer = list.contains(active) ? active.dataset.peer : null;
    list.replaceChildren();
    for (const person of [self, ...peers]) {
      if (!person) continue;
      const isSelf = person === self;
      const li = el("li", { class: "person", "data-peer": person.id },
        el("bdi", { class: "person-name", text: isSelf ? t("room.tile.self", { name: person.name }) : person.name }),
        el("span", { class: "person-role", text: this.roleLabel(person.role) }),
        el("span", { class: "person-state" }));
      if (!isSelf) {
        const release = RELEASED_ROLES.has(person.role);
        const button = el("button", {
          type: "button", class: `button-small ${release ? "release" : "button-danger remove"}`, "data-peer": person.id,
          text: release ? t("staff.release") : t("room.people.remove"),
          "aria-label": release ? t("staff.release_label", { name: person.name })
            : t("room.people.remove_label", { name: person.name }),
        });
        button.addEventListener("click", () => (release ? this.onRelease(person) : this.onRemove(person)));
        li.append(el("span", { class: "person-buttons" }, button));
      }
      list.append(li);
      this.setConnection(person.id, isSelf ? "connected" : connectionOf(person.id));
    }
    if (focusedPeer) {
      const again = list.querySelector(`button[data-peer="${CSS.escape(focusedPeer)}"]`);
      (again || this.$("people-title")).focus({ preventScroll: true });
    }
  }

  setConnection(id, connection) {
    const li = this.$("people")?.querySelector(`li[data-peer="${CSS.escape(id)}"]`);
    if (!li) return;
    li.dataset.connection = connection;
    li.querySelector(".person-state").textContent = t(`room.people.${connection}`);
  }
}
