// The video tiles on the stage: one per participant, placed by stagelayout.js.
//
// What is large: a peer's shared screen takes the stage while it lasts; otherwise up to two
// pinned tiles (an interpreter pinned beside the citizen); otherwise, in speaker view, whoever
// speaks; otherwise the gallery. The own picture is small in a corner: drag it (it snaps to the
// nearest corner) or press its "move" button to send it round the corners; the choice is kept
// for this browser. Names are text (never markup), isolated (dir=auto) and never broken inside
// a word: a long name ends with an ellipsis and the whole name stays in the text.

import { el } from "./dom.js";
import { t } from "./i18n.js";
import { CORNERS, layoutStage } from "./stagelayout.js";

const CORNER_KEY = "roomserver.selfcorner";
const MAX_FOCUS = 2;

function initials(name) {
  return (name || "?").trim().split(/\s+/).slice(0, 2).map((part) => [...part][0] || "").join("").toUpperCase() || "?";
}

function savedCorner() {
  try {
    const value = window.localStorage.getItem(CORNER_KEY);
    if (CORNERS.includes(value)) return value;
  } catch {
    /* no storage: the default */
  }
  return document.documentElement.dir === "rtl" ? "bottom-left" : "bottom-right";
}

export class Tiles extends EventTarget {
  /**
   * @param {HTMLElement} list   the <ul id="tiles">
   * @param {HTMLElement} stage  its positioned container (observed for size)
   * @param {(text: string) => void} announce  reads a change out (polite)
   * @param {(id: string) => string} roleLabel
   */
  constructor(list, stage, { announce, roleLabel }) {
    super();
    this.list = list;
    this.stage = stage;
    this.announce = announce;
    this.roleLabel = roleLabel;
    this.tiles = new Map(); // id -> tile record
    this.pinned = []; // ids, oldest first
    this.presenting = null; // a peer whose screen takes the stage
    this.speakerView = false;
    this.speaker = null;
    this.corner = savedCorner();
    this.sinkId = null;
    this.playBlocked = new Set();
    this.frame = 0;
    new ResizeObserver(() => this.layout()).observe(list);
  }

  get selfId() {
    for (const [id, tile] of this.tiles) if (tile.self) return id;
    return null;
  }

  get remoteIds() {
    return [...this.tiles.values()].filter((tile) => !tile.self).map((tile) => tile.id);
  }

  // -- tiles ------------------------------------------------------------------------------

  /** Create or update the tile of a participant ({id, name, role, state, connection}). */
  upsert(person, { self = false } = {}) {
    let tile = this.tiles.get(person.id);
    if (!tile) {
      tile = this.create(person, self);
      this.tiles.set(person.id, tile);
      if (self) this.list.append(tile.li);
      else {
        const selfTile = this.list.querySelector("li.self");
        this.list.insertBefore(tile.li, selfTile);
      }
      this.schedule();
    }
    tile.person = person;
    const name = self ? t("room.tile.self", { name: person.name }) : person.name;
    tile.name.textContent = name;
    tile.name.title = name;
    tile.role.textContent = this.roleLabel(person.role);
    tile.placeholder.textContent = initials(person.name);
    if (tile.pin) tile.pin.setAttribute("aria-label", t("room.tile.pin_label", { name: person.name }));
    this.updateState(person.id);
    return tile;
  }

  create(person, self) {
    const video = el("video", { autoplay: true, playsinline: true });
    video.muted = self; // our own sound would echo; peers' sound plays
    const placeholder = el("div", { class: "tile-placeholder", "aria-hidden": "true" });
    const overlay = el("p", { class: "tile-overlay" });
    const name = el("span", { class: "tile-name", dir: "auto" });
    const role = el("span", { class: "tile-role" });
    const flags = el("span", { class: "tile-flags" });
    const tools = el("span", { class: "tile-tools" });
    const li = el("li", { class: self ? "tile self" : "tile", "data-peer": person.id }, video, placeholder, overlay,
      flags, el("span", { class: "tile-bar" }, name, role), tools);
    const tile = { id: person.id, li, video, placeholder, overlay, name, role, flags, self, person, pin: null,
      rtc: self ? "connected" : "new", stream: null };
    if (self) {
      const move = el("button", { type: "button", class: "move", text: t("room.tile.move"),
        "aria-label": t("room.tile.move_label") });
      move.addEventListener("click", () => this.moveSelf(CORNERS[(CORNERS.indexOf(this.corner) + 1) % CORNERS.length]));
      tools.append(move);
      this.draggable(li);
    } else {
      tile.pin = el("button", { type: "button", class: "pin", "aria-pressed": "false", text: t("room.tile.pin") });
      tile.pin.addEventListener("click", () => this.togglePin(person.id));
      tools.append(tile.pin);
      if (this.sinkId) this.applySink(video);
    }
    return tile;
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    this.pinned = this.pinned.filter((p) => p !== id);
    if (this.presenting === id) this.presenting = null;
    if (this.speaker === id) this.speaker = null;
    tile.video.srcObject = null;
    tile.li.remove();
    this.tiles.delete(id);
    this.playBlocked.delete(id);
    this.updatePlayButton();
    this.schedule();
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
    this.updateState(id);
  }

  setRtcState(id, state) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.rtc = state;
    this.updateState(id);
  }

  /** The connection the person sees for a tile: connected, connecting or reconnecting. */
  connection(id) {
    return this.tiles.get(id)?.li.dataset.connection || "connecting";
  }

  updateState(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const state = tile.person.state || {};
    let connection;
    if (tile.self) connection = "connected";
    else if (tile.person.connection === "reconnecting") connection = "reconnecting";
    else if (tile.rtc === "connected") connection = "connected";
    else if (tile.rtc === "disconnected" || tile.rtc === "failed") connection = "reconnecting";
    else connection = "connecting";
    tile.li.dataset.connection = connection;
    tile.li.dataset.camera = state.camera === false && !state.screen ? "off" : "on";
    tile.li.dataset.screen = state.screen ? "on" : "off";
    tile.overlay.textContent = connection === "connected" ? "" : t(`room.tile.${connection}`);
    const flags = [];
    if (state.mic === false) flags.push(["mic-off", t("room.flag.mic_off")]);
    if (state.camera === false && !state.screen) flags.push(["camera-off", t("room.flag.camera_off")]);
    if (state.screen) flags.push(["screen", t("room.flag.screen")]);
    if (state.hand) flags.push(["hand", t("room.flag.hand")]);
    tile.flags.replaceChildren(...flags.map(([kind, text]) => el("span", { class: `flag flag-${kind}`, text })));
    this.dispatchEvent(new CustomEvent("state", { detail: { id, connection } }));
    if (!tile.self) this.followScreen(id, Boolean(state.screen));
  }

  // -- what is large --------------------------------------------------------------------

  /** A peer who starts sharing a screen takes the stage; when it stops, the stage goes back. */
  followScreen(id, sharing) {
    if (sharing && this.presenting !== id && !this.tiles.get(id)?.sharing) {
      this.presenting = id;
      this.announce(t("room.announce.presenting", { name: this.tiles.get(id).person.name }));
      this.schedule();
    } else if (!sharing && this.presenting === id) {
      this.presenting = null;
      this.schedule();
    }
    const tile = this.tiles.get(id);
    if (tile) tile.sharing = sharing;
  }

  togglePin(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    if (this.pinned.includes(id)) {
      this.pinned = this.pinned.filter((p) => p !== id);
      this.announce(t("room.announce.unpinned", { name: tile.person.name }));
    } else {
      this.pinned = [...this.pinned, id].slice(-MAX_FOCUS);
      this.announce(t("room.announce.pinned", { name: tile.person.name }));
    }
    for (const [tileId, each] of this.tiles) {
      if (!each.pin) continue;
      const on = this.pinned.includes(tileId);
      each.li.classList.toggle("pinned", on);
      each.pin.setAttribute("aria-pressed", on ? "true" : "false");
      each.pin.textContent = on ? t("room.tile.unpin") : t("room.tile.pin");
    }
    this.schedule();
  }

  setSpeakerView(on) {
    this.speakerView = Boolean(on);
    this.schedule();
  }

  setSpeaker(id) {
    if (this.speaker === id) return;
    if (this.speaker) this.tiles.get(this.speaker)?.li.classList.remove("speaking");
    this.speaker = id && this.tiles.has(id) ? id : null;
    if (this.speaker) this.tiles.get(this.speaker).li.classList.add("speaking");
    if (this.speakerView && !this.presenting && !this.pinned.length) this.schedule();
  }

  focus() {
    const remote = this.remoteIds;
    const focus = [];
    if (this.presenting && remote.includes(this.presenting)) focus.push(this.presenting);
    for (const id of this.pinned) if (!focus.includes(id) && remote.includes(id)) focus.push(id);
    if (!focus.length && this.speakerView && remote.length > 1) focus.push(this.speaker || remote[0]);
    return focus.slice(0, MAX_FOCUS);
  }

  // -- the own picture ------------------------------------------------------------------

  moveSelf(corner) {
    if (!CORNERS.includes(corner)) return;
    this.corner = corner;
    try {
      window.localStorage.setItem(CORNER_KEY, corner);
    } catch {
      /* kept for this page only */
    }
    this.announce(t("room.announce.self_moved", { corner: t(`room.corner.${corner}`) }));
    this.schedule();
  }

  draggable(li) {
    let start = null;
    li.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || event.target.closest("button")) return;
      const box = li.getBoundingClientRect();
      start = { x: event.clientX, y: event.clientY, left: box.left, top: box.top };
      li.setPointerCapture(event.pointerId);
      li.classList.add("dragging");
    });
    li.addEventListener("pointermove", (event) => {
      if (!start) return;
      const area = this.list.getBoundingClientRect();
      li.style.setProperty("--x", `${start.left - area.left + event.clientX - start.x}px`);
      li.style.setProperty("--y", `${start.top - area.top + event.clientY - start.y}px`);
    });
    const drop = (event) => {
      if (!start) return;
      start = null;
      li.classList.remove("dragging");
      const area = this.list.getBoundingClientRect();
      const box = li.getBoundingClientRect();
      const right = box.left + box.width / 2 > area.left + area.width / 2;
      const bottom = box.top + box.height / 2 > area.top + area.height / 2;
      if (event.type === "pointerup") this.moveSelf(`${bottom ? "bottom" : "top"}-${right ? "right" : "left"}`);
      else this.schedule();
    };
    li.addEventListener("pointerup", drop);
    li.addEventListener("pointercancel", drop);
  }

  // -- placing ----------------------------------------------------------------------------

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.layout();
    });
  }

  /** Place every tile; returns the boxes (for tests, through the page's debug handle). */
  layout() {
    const width = this.list.clientWidth;
    const height = this.list.clientHeight;
    const remote = this.remoteIds;
    const focus = this.focus();
    const { boxes } = layoutStage({ width, height, remote, focus, self: this.selfId, corner: this.corner });
    for (const [id, tile] of this.tiles) {
      const box = boxes.get(id);
      if (!box) continue;
      const style = tile.li.style;
      style.setProperty("--x", `${box.x}px`);
      style.setProperty("--y", `${box.y}px`);
      style.setProperty("--w", `${box.w}px`);
      style.setProperty("--h", `${box.h}px`);
      tile.li.classList.toggle("compact", Boolean(box.compact));
      tile.li.classList.toggle("focus", focus.includes(id));
      tile.li.dataset.placed = "true";
    }
    this.stage.dataset.layout = focus.length ? "focus" : "gallery";
    this.stage.dataset.corner = this.corner;
    this.dispatchEvent(new CustomEvent("layout", { detail: { remote: remote.length, focus } }));
    return boxes;
  }

  // -- sound output and blocked playback ------------------------------------------------------

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
    let button = document.getElementById("play-blocked");
    if (!this.playBlocked.size) {
      button?.remove();
      return;
    }
    if (!button) {
      button = el("button", { type: "button", class: "button-primary", id: "play-blocked", text: t("room.play_blocked") });
      button.addEventListener("click", () => {
        for (const id of [...this.playBlocked]) {
          this.tiles.get(id)?.video.play().then(() => { this.playBlocked.delete(id); this.updatePlayButton(); })
            .catch(() => {});
        }
      });
      this.stage.append(button);
    }
  }
}
