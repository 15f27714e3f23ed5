// The in-room view: screens, participant tiles, controls, chat log, the counsellor's panel.
//
// Only DOM work lives here (room.js decides what happens). Every text comes from the i18n
// catalogs; names and chat text are inserted with textContent, never as HTML. The page's
// state is mirrored on <body data-room-state> (connecting, waiting, in-call, reconnecting,
// ended, removed, denied, left, replaced, error) for styling and for tests.

import { t } from "./i18n.js";

const SCREENS = ["connecting", "waiting", "call", "end"];
const ROLES = ["counsellor", "citizen", "expert", "interpreter"];
// Refusals that mean "this is not a valid link of ours" share one plain message.
const TOKEN_INVALID = new Set(["token_malformed", "token_bad_signature", "token_unknown_kid",
  "token_algorithm_not_allowed", "token_wrong_issuer", "token_wrong_audience"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export function roleLabel(role) {
  return ROLES.includes(role) ? t(`room.role.${role}`) : t("room.role.unknown");
}

function initials(name) {
  return (name || "?").trim().split(/\s+/).slice(0, 2).map((part) => [...part][0] || "").join("").toUpperCase() || "?";
}

function timeOf(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString(document.documentElement.lang || "de", { hour: "2-digit", minute: "2-digit" });
}

export class RoomView {
  constructor(root = document) {
    this.root = root;
    this.$ = (id) => document.getElementById(id);
    this.tiles = new Map(); // id -> {li, video, ...}
    this.pinned = null;
    this.sinkId = null;
    this.lastAnnouncement = "";
    this.playBlocked = new Set();
  }

  // -- screens and states --------------------------------------------------------

  setState(state) {
    document.body.dataset.roomState = state;
  }

  get state() {
    return document.body.dataset.roomState;
  }

  showScreen(name, { focus = true } = {}) {
    for (const screen of SCREENS) {
      const section = this.$(`screen-${screen}`);
      if (section) section.hidden = screen !== name;
    }
    if (focus) {
      const heading = this.$(`screen-${name}`)?.querySelector("h1[tabindex]");
      if (heading && !heading.classList.contains("visually-hidden")) heading.focus({ preventScroll: true });
    }
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
    this.$("room-title").textContent = title ? ` · ${title}` : "";
    const waiting = this.$("waiting-room-name");
    if (waiting) waiting.textContent = title ? t("room.waiting.room", { title }) : "";
    if (title) document.title = `${title} – ${t("room.title")}`;
  }

  showEnd(kind, code = null, { rejoin = null } = {}) {
    this.setState(kind);
    const shown = TOKEN_INVALID.has(code) ? "token_invalid" : code || "unknown";
    const key = kind === "error" ? `room.error.${shown}` : `room.end.${kind}`;
    let title = t(`${key}.title`);
    if (title === `${key}.title`) title = t("room.error.unknown.title");
    let text = t(`${key}.text`);
    if (text === `${key}.text`) text = t("room.error.unknown.text");
    this.$("end-title").textContent = title;
    this.$("end-text").textContent = text;
    const codeBox = this.$("end-code");
    codeBox.textContent = code && kind === "error" ? t("room.error.code", { code }) : "";
    document.body.dataset.errorCode = code || "";
    codeBox.parentElement.querySelector(".rejoin")?.remove();
    if (rejoin) {
      codeBox.after(el("p", { className: "rejoin" },
        el("button", { type: "button", className: "button", text: t("room.end.rejoin"), onclick: rejoin })));
    }
    this.status("");
    this.showScreen("end");
    const dialog = this.$("confirm");
    if (dialog.open) dialog.close("cancel");
  }

  // -- tiles ----------------------------------------------------------------------

  /** Create or update the tile of a participant ({id, name, role, state, connection}). */
  upsertTile(person, { self = false } = {}) {
    let tile = this.tiles.get(person.id);
    if (!tile) {
      tile = this.createTile(person, self);
      this.tiles.set(person.id, tile);
      const list = this.$("tiles");
      if (self) list.prepend(tile.li);
      else list.append(tile.li);
    }
    tile.person = person;
    tile.name.textContent = self ? t("room.tile.self", { name: person.name }) : person.name;
    tile.role.textContent = roleLabel(person.role);
    tile.placeholder.textContent = initials(person.name);
    tile.pin.setAttribute("aria-label", t("room.tile.pin_label", { name: person.name }));
    this.updateTileState(person.id);
    return tile;
  }

  createTile(person, self) {
    const video = el("video", { autoplay: true, playsinline: true });
    video.muted = self; // our own sound would echo; peers' sound plays
    const placeholder = el("div", { className: "tile-placeholder", "aria-hidden": "true" });
    const overlay = el("p", { className: "tile-overlay" });
    const name = el("span", { className: "tile-name" });
    const role = el("span", { className: "tile-role" });
    const flags = el("span", { className: "tile-flags" });
    const pin = el("button", { type: "button", className: "button small pin", "aria-pressed": "false", text: t("room.tile.pin") });
    const li = el("li", { className: "tile", "data-peer": person.id, "data-self": self ? "true" : null },
      el("div", { className: "tile-media" }, video, placeholder, overlay),
      el("div", { className: "tile-bar" }, el("span", { className: "tile-who" }, name, role), flags, pin));
    pin.addEventListener("click", () => this.togglePin(person.id));
    const tile = { li, video, placeholder, overlay, name, role, flags, pin, self, person, rtc: self ? "connected" : "new", stream: null };
    if (this.sinkId && !self) this.applySink(video);
    return tile;
  }

  removeTile(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    if (this.pinned === id) this.togglePin(id);
    tile.video.srcObject = null;
    tile.li.remove();
    this.tiles.delete(id);
    this.playBlocked.delete(id);
    this.updatePlayButton();
  }

  setStream(id, stream) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    tile.stream = stream;
    const play = tile.video.play();
    if (play && play.catch) {
      play.then(() => { this.playBlocked.delete(id); this.updatePlayButton(); })
        .catch((error) => {
          if (error && error.name === "NotAllowedError") {
            this.playBlocked.add(id);
            this.updatePlayButton();
          }
        });
    }
    this.updateTileState(id);
  }

  setRtcState(id, state) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.rtc = state;
    this.updateTileState(id);
  }

  /** The tile's visible state from the signalling connection, the RTC state and the media state. */
  updateTileState(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const p = tile.person;
    const state = p.state || {};
    let connection;
    if (tile.self) connection = "connected";
    else if (p.connection === "reconnecting") connection = "reconnecting";
    else if (tile.rtc === "connected") connection = "connected";
    else if (tile.rtc === "disconnected" || tile.rtc === "failed") connection = "reconnecting";
    else connection = "connecting";
    tile.li.dataset.connection = connection;
    tile.li.dataset.camera = state.camera === false && !state.screen ? "off" : "on";
    tile.overlay.textContent = connection === "connected" ? "" : t(`room.tile.${connection}`);
    tile.flags.replaceChildren();
    const flags = [];
    if (state.mic === false) flags.push(["mic-off", t("room.flag.mic_off")]);
    if (state.camera === false) flags.push(["camera-off", t("room.flag.camera_off")]);
    if (state.screen) flags.push(["screen", t("room.flag.screen")]);
    if (state.hand) flags.push(["hand", t("room.flag.hand")]);
    for (const [kind, text] of flags) tile.flags.append(el("span", { className: `flag flag-${kind}`, text }));
    this.renderPeopleState(id, connection);
  }

  togglePin(id) {
    const next = this.pinned === id ? null : id;
    this.pinned = next;
    for (const [tileId, tile] of this.tiles) {
      const on = tileId === next;
      tile.li.classList.toggle("pinned", on);
      tile.pin.setAttribute("aria-pressed", on ? "true" : "false");
      tile.pin.textContent = on ? t("room.tile.unpin") : t("room.tile.pin");
    }
    this.$("tiles").classList.toggle("has-pinned", Boolean(next));
    const tile = next ? this.tiles.get(next) : null;
    this.announce(tile ? t("room.announce.pinned", { name: tile.person.name }) : t("room.announce.unpinned"));
  }

  /** Speaker choice from the join page (where the browser supports it). */
  setAudioOutput(deviceId) {
    this.sinkId = deviceId || null;
    if (!this.sinkId) return;
    for (const tile of this.tiles.values()) if (!tile.self) this.applySink(tile.video);
  }

  applySink(video) {
    if (typeof video.setSinkId === "function") video.setSinkId(this.sinkId).catch(() => {});
  }

  updatePlayButton() {
    let button = this.$("play-blocked");
    if (!this.playBlocked.size) {
      button?.remove();
      return;
    }
    if (!button) {
      button = el("button", { type: "button", className: "button", id: "play-blocked", text: t("room.play_blocked") });
      button.addEventListener("click", () => {
        for (const id of [...this.playBlocked]) {
          const tile = this.tiles.get(id);
          tile?.video.play().then(() => { this.playBlocked.delete(id); this.updatePlayButton(); }).catch(() => {});
        }
      });
      this.$("tiles").before(button);
    }
  }

  // -- controls ---------------------------------------------------------------------

  onControl(name, handler) {
    this.$(`ctl-${name}`)?.addEventListener("click", handler);
  }

  setToggle(name, pressed) {
    this.$(`ctl-${name}`)?.setAttribute("aria-pressed", pressed ? "true" : "false");
  }

  setControlDisabled(name, disabled) {
    const button = this.$(`ctl-${name}`);
    if (button) button.disabled = Boolean(disabled);
  }

  mediaProblem(text) {
    const box = this.$("media-problem");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // -- chat -------------------------------------------------------------------------

  onChatSubmit(handler) {
    const form = this.$("chat-form");
    const input = this.$("chat-input");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      if (handler(text) !== false) input.value = "";
    });
  }

  appendChat({ from, text, own = false, notice = false }) {
    const log = this.$("chat-log");
    const time = new Date().toLocaleTimeString(document.documentElement.lang || "de", { hour: "2-digit", minute: "2-digit" });
    const item = el("p", { className: `chat-message${own ? " own" : ""}${notice ? " notice" : ""}` });
    if (notice) {
      item.textContent = text;
    } else {
      item.append(el("span", { className: "chat-from", text: own ? t("room.chat.me") : from }),
        el("span", { className: "visually-hidden", text: ": " }),
        el("span", { className: "chat-time", text: time }),
        el("span", { className: "chat-text", text }));
    }
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  setChatReach(open) {
    const input = this.$("chat-input");
    input.placeholder = open ? "" : t("room.chat.nobody");
  }

  // -- moderation (counsellor) --------------------------------------------------------

  showModeration(show) {
    this.$("moderation").hidden = !show;
    document.body.classList.toggle("moderator", Boolean(show));
  }

  /** The waiting room: [{id, name, role, since}], with admit and deny buttons. */
  renderLobby(waiting, { onAdmit, onDeny }) {
    const list = this.$("lobby");
    list.replaceChildren();
    this.$("lobby-empty").hidden = waiting.length > 0;
    for (const entry of waiting) {
      const admit = el("button", { type: "button", className: "button small admit", "data-peer": entry.id,
        text: t("room.lobby.admit"), "aria-label": t("room.lobby.admit_label", { name: entry.name }) });
      const deny = el("button", { type: "button", className: "button small danger deny", "data-peer": entry.id,
        text: t("room.lobby.deny"), "aria-label": t("room.lobby.deny_label", { name: entry.name }) });
      admit.addEventListener("click", () => { admit.disabled = true; deny.disabled = true; onAdmit(entry); });
      deny.addEventListener("click", () => { admit.disabled = true; deny.disabled = true; onDeny(entry); });
      const since = timeOf(entry.since);
      list.append(el("li", { className: "lobby-entry", "data-peer": entry.id },
        el("span", { className: "person-name", text: entry.name }),
        el("span", { className: "person-role", text: roleLabel(entry.role) }),
        since ? el("span", { className: "person-since", text: t("room.lobby.since", { time: since }) }) : null,
        el("span", { className: "lobby-buttons" }, admit, deny)));
    }
  }

  /** The participant list: self first, then peers, each with role and connection state. */
  renderPeople(self, peers, { onRemove }) {
    const list = this.$("people");
    list.replaceChildren();
    for (const person of [self, ...peers]) {
      if (!person) continue;
      const isSelf = person === self;
      const state = el("span", { className: "person-state" });
      const li = el("li", { className: "person", "data-peer": person.id },
        el("span", { className: "person-name", text: isSelf ? t("room.tile.self", { name: person.name }) : person.name }),
        el("span", { className: "person-role", text: roleLabel(person.role) }),
        state);
      if (!isSelf) {
        const remove = el("button", { type: "button", className: "button small danger remove", "data-peer": person.id,
          text: t("room.people.remove"), "aria-label": t("room.people.remove_label", { name: person.name }) });
        remove.addEventListener("click", () => onRemove(person));
        li.append(remove);
      }
      list.append(li);
      this.renderPeopleState(person.id);
    }
  }

  renderPeopleState(id, connection = null) {
    const li = this.$("people")?.querySelector(`li[data-peer="${CSS.escape(id)}"]`);
    if (!li) return;
    const tile = this.tiles.get(id);
    const value = connection || tile?.li.dataset.connection || "connecting";
    li.dataset.connection = value;
    li.querySelector(".person-state").textContent = t(`room.people.${value}`);
  }

  mountInvite(mount) {
    const panel = this.$("invite-panel");
    mount(panel);
    panel.hidden = false;
  }

  // -- confirmation -------------------------------------------------------------------

  /** A modal confirmation (<dialog>); resolves true when confirmed. */
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
