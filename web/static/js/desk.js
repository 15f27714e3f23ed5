// The desk page (/desk) of experts and interpreters: availability, incoming calls, callbacks.
//
// One WebSocket to /desk/ws (docs/protocol.md, "Desk protocol"); the session cookie
// authenticates it. It reconnects by itself with backoff and says so. An incoming call
// rings (WebAudio oscillator, no audio file), shows a card that takes the focus, is read
// out assertively, and raises a browser notification when the person allowed them. On
// `accepted` this tab goes straight into the consultation (the token is in the URL
// fragment, which never reaches the server). A consultation one left while the call stands
// is offered under "Zurück in die Beratung" (`returns`); `rejoin` brings a fresh single-use
// token, and this tab goes back in the same way.
//
// DEBUG HANDLE: window.deskDebug (connection state, ringing call ids, ring tone and its audio
// context state, drop() to simulate a network drop).

import { el } from "./dom.js";
import { initI18n, t } from "./i18n.js";
import { unlockAudio } from "./sound.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_INTERVAL_MS = 10000;
const PONG_TIMEOUT_MS = 25000;
const RECONNECTED_SHOWN_MS = 10000;
const STOP_REASONS = new Set(["taken", "cancelled", "timed_out", "declined", "accepted_elsewhere", "unavailable"]);

const $ = (id) => document.getElementById(id);

function say(text) {
  const region = $("desk-live");
  region.textContent = region.textContent === text ? `${text}\u00a0` : text;
}

function alarm(text) {
  const region = $("desk-alert");
  region.textContent = region.textContent === text ? `${text}\u00a0` : text;
}

function timeOf(seconds) {
  const date = new Date(seconds * 1000);
  return date.toLocaleTimeString(document.documentElement.lang || "de", { hour: "2-digit", minute: "2-digit" });
}

// -- the ring tone: two short tones every two seconds while anything rings ---------------
//
// The tones are scheduled on the audio clock up to the latest call's expiry, so a background
// tab (whose timers the browser throttles) rings on time; stop() silences them at once.

const RING_PERIOD_S = 2;
const RING_MAX_S = 600;

class Ringer {
  constructor() {
    this.ctx = null;
    this.master = null;
    this.until = 0; // audio-clock time the scheduled tones reach
  }

  /** Create (or resume) the audio context; browsers allow sound after a click or key. */
  unlock() {
    this.ctx = unlockAudio(this.ctx);
  }

  beep(at, frequency) {
    const osc = this.ctx.createOscillator();
    const gain = this.ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.35);
    osc.connect(gain).connect(this.master);
    osc.start(at);
    osc.stop(at + 0.4);
  }

  /** Ring until `expiresAt` (Unix seconds); a later call extends it. */
  start(expiresAt) {
    document.body.dataset.ringing = "true";
    this.unlock();
    if (!this.ctx) return;
    const seconds = Math.min(RING_MAX_S, Math.max(RING_PERIOD_S, expiresAt - Date.now() / 1000));
    const end = this.ctx.currentTime + seconds;
    if (!this.master) {
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
      this.until = this.ctx.currentTime;
    }
    for (let at = Math.max(this.until, this.ctx.currentTime + 0.05); at < end; at += RING_PERIOD_S) {
      this.beep(at, 880);
      this.beep(at + 0.45, 660);
      this.until = at + RING_PERIOD_S;
    }
  }

  stop() {
    document.body.dataset.ringing = "false";
    if (this.master) {
      this.master.disconnect(); // every scheduled tone goes silent with it
      this.master = null;
    }
    this.until = 0;
  }

  get playing() {
    return document.body.dataset.ringing === "true";
  }
}

// -- the page ------------------------------------------------------------------------------

class Desk {
  constructor() {
    this.ws = null;
    this.attempt = 0;
    this.everConnected = false;
    this.state = "connecting";
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastPong = 0;
    this.pingId = 0;
    this.reconnectedTimer = null;
    this.calls = new Map(); // call id -> {call, li, countdown, notification}
    this.availability = null;
    this.status = null;
    this.inConsultation = false;
    this.leaving = false;
    this.acceptedCall = null;
    this.ringer = new Ringer();
  }

  start() {
    for (const button of document.querySelectorAll(".desk-status")) {
      button.addEventListener("click", () => {
        this.ringer.unlock();
        this.send({ type: "availability", status: button.dataset.status });
      });
    }
    const notify = $("desk-notify");
    if ("Notification" in window && Notification.permission === "default") {
      notify.hidden = false;
      notify.addEventListener("click", async () => {
        this.ringer.unlock();
        try {
          await Notification.requestPermission();
        } catch {
          /* not allowed here */
        }
        notify.hidden = Notification.permission !== "default";
        say(t(Notification.permission === "granted" ? "desk.notify.granted" : "desk.notify.denied"));
      });
    }
    // Any click or key on the page lets the ring tone play later.
    document.addEventListener("pointerdown", () => this.ringer.unlock(), { once: true });
    document.addEventListener("keydown", () => this.ringer.unlock(), { once: true });
    window.addEventListener("online", () => { if (this.state === "reconnecting") this.retryNow(); });
    window.addEventListener("pagehide", () => { this.leaving = true; this.ws?.close(1000); });
    this.renderAvailability();
    this.connect();
  }

  // -- connection -----------------------------------------------------------------

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/desk/ws`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onMessage(message);
    });
    ws.addEventListener("close", () => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (!this.leaving) this.scheduleRetry();
    });
  }

  scheduleRetry() {
    this.setConnection("reconnecting");
    this.setControls(false);
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.retry(), delay * (0.8 + Math.random() * 0.4));
  }

  async retry() {
    if (this.attempt >= 3) {
      // A socket that keeps failing may mean the session ended: then sign in again.
      try {
        const r = await fetch("/api/v1/session", { credentials: "same-origin" });
        if (r.status === 401) {
          window.location.assign("/signin?next=/desk");
          return;
        }
      } catch {
        /* offline: keep trying */
      }
    }
    this.connect();
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.connect();
  }

  drop() {
    this.ws?.close(4000);
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  startPings() {
    clearInterval(this.pingTimer);
    this.lastPong = Date.now();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastPong > PONG_TIMEOUT_MS) {
        this.ws?.close(4000); // dead socket: the close handler reconnects
        return;
      }
      this.send({ type: "ping", id: ++this.pingId });
    }, PING_INTERVAL_MS);
  }

  setConnection(state) {
    this.state = state;
    document.body.dataset.connection = state;
    const box = $("desk-connection");
    box.dataset.state = state;
    const text = t(`desk.connection.${state}`);
    $("desk-connection-text").textContent = text;
    if (state === "reconnecting" || state === "reconnected") say(text);
  }

  setControls(enabled) {
    for (const button of document.querySelectorAll(".desk-status, .desk-call button, .desk-callbacks button, .desk-returns button")) {
      button.disabled = !enabled;
    }
  }

  // -- messages ---------------------------------------------------------------------

  onMessage(m) {
    this.lastPong = Date.now();
    switch (m.type) {
      case "desk": return this.onHello(m);
      case "ring": return this.ring(m.call, true);
      case "ring-stop": return this.stopRinging(m.call, m.reason);
      case "accepted": return this.onAccepted(m);
      case "presence": return this.onPresence(m);
      case "callbacks": return this.renderCallbacks(m.callbacks || []);
      case "returns": return this.renderReturns(m.calls || []);
      case "direct-invite": return this.directInvite(m);
      case "error": return this.onError(m);
      default: return undefined;
    }
  }

  onHello(m) {
    const again = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    this.startPings();
    this.onPresence(m);
    this.renderCallbacks(m.callbacks || []);
    this.renderReturns(m.returns || [], { first: !again });
    // The server's list of ringing calls is the truth now.
    const ringing = new Set((m.ringing || []).map((c) => c.id));
    for (const id of [...this.calls.keys()]) if (!ringing.has(id)) this.removeCall(id);
    for (const call of m.ringing || []) this.ring(call, !this.calls.has(call.id));
    this.setControls(true);
    clearTimeout(this.reconnectedTimer);
    if (again) {
      this.setConnection("reconnected");
      this.reconnectedTimer = setTimeout(() => {
        if (this.state === "reconnected") this.setConnection("connected");
      }, RECONNECTED_SHOWN_MS);
    } else {
      this.setConnection("connected");
    }
  }

  onPresence(m) {
    this.status = m.status;
    this.availability = m.availability;
    this.inConsultation = Boolean(m.in_consultation);
    this.renderAvailability();
  }

  renderAvailability() {
    for (const button of document.querySelectorAll(".desk-status")) {
      button.setAttribute("aria-pressed", button.dataset.status === this.availability ? "true" : "false");
    }
    document.body.dataset.status = this.status || "";
    const text = $("desk-status-text");
    if (!this.status) {
      text.textContent = "";
    } else if (this.inConsultation && this.status === "busy" && this.availability === "available") {
      text.textContent = t("desk.status.in_consultation");
    } else {
      text.textContent = t(`desk.status.${this.status}`);
    }
  }

  // -- calls ----------------------------------------------------------------------------

  ring(call, fresh) {
    if (!call || !call.id) return;
    $("calls-notice").hidden = true;
    let entry = this.calls.get(call.id);
    if (!entry) {
      entry = this.renderCall(call);
      this.calls.set(call.id, entry);
      $("calls").append(entry.li);
    }
    $("calls-empty").hidden = true;
    this.ringer.start(call.expires_at);
    if (fresh) {
      const text = t("desk.call.alert", { title: call.room_title, caller: call.caller_name, target: call.target_label });
      alarm(text);
      entry.box.focus();
      this.notify(call, entry);
    }
  }

  renderCall(call) {
    const id = `call-${call.id}`;
    const countdown = el("p", { class: "desk-countdown", id: `${id}-countdown` });
    const accept = el("button", { type: "button", class: "button-primary desk-accept", text: t("desk.call.accept"),
      "aria-describedby": `${id}-title` });
    const decline = el("button", { type: "button", class: "button-danger desk-decline", text: t("desk.call.decline"),
      "aria-describedby": `${id}-title` });
    // The list item holds a group (a list may only hold items); the group takes the focus when it rings.
    const box = el("div", { class: "desk-call", "data-call": call.id, tabindex: "-1", role: "group",
      "aria-labelledby": `${id}-heading`, "aria-describedby": `${id}-title ${id}-countdown` },
      el("h3", { id: `${id}-heading`, class: "desk-call-heading" },
        el("span", { class: "desk-call-icon", "aria-hidden": "true", text: "☎" }), " ",
        el("span", { text: t("desk.call.incoming") })),
      el("dl", { class: "desk-call-facts", id: `${id}-title` },
        el("dt", { text: t("desk.call.consultation") }), el("dd", { text: call.room_title || "–" }),
        el("dt", { text: t("desk.call.caller") }), el("dd", { text: call.caller_name || "–" }),
        el("dt", { text: t(call.kind === "language" ? "desk.call.language" : "desk.call.department") }),
        el("dd", { text: call.target_label || call.target })),
      countdown,
      el("div", { class: "buttons desk-call-buttons" }, accept, decline));
    const li = el("li", { class: "desk-call-item" }, box);
    const entry = { call, li, box, countdown, notification: null, timer: null };
    accept.addEventListener("click", () => {
      this.ringer.unlock();
      accept.disabled = true;
      decline.disabled = true;
      if (this.send({ type: "accept", call: call.id })) {
        countdown.textContent = t("desk.call.accepting");
      } else {
        accept.disabled = false;
        decline.disabled = false;
      }
    });
    decline.addEventListener("click", () => {
      if (this.send({ type: "decline", call: call.id })) {
        accept.disabled = true;
        decline.disabled = true;
      }
    });
    const tick = () => {
      if (accept.disabled && decline.disabled) return;
      const left = Math.max(0, Math.round(call.expires_at - Date.now() / 1000));
      countdown.textContent = t("desk.call.countdown", { seconds: left });
    };
    tick();
    entry.timer = setInterval(tick, 1000);
    return entry;
  }

  notify(call, entry) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification(t("desk.notify.title"), {
        body: t("desk.notify.body", { title: call.room_title, caller: call.caller_name, target: call.target_label }),
        tag: `call-${call.id}`, requireInteraction: true,
      });
      n.addEventListener("click", () => {
        window.focus();
        entry.box.focus();
        n.close();
      });
      entry.notification = n;
    } catch {
      /* notifications unavailable (e.g. only from a service worker) */
    }
  }

  removeCall(id) {
    const entry = this.calls.get(id);
    if (!entry) return;
    clearInterval(entry.timer);
    entry.notification?.close();
    const hadFocus = entry.li.contains(document.activeElement);
    entry.li.remove();
    this.calls.delete(id);
    if (!this.calls.size) {
      this.ringer.stop();
      $("calls-empty").hidden = false;
    }
    if (hadFocus) $("calls-title").focus();
  }

  showNotice(text, reason) {
    const notice = $("calls-notice");
    notice.textContent = text;
    notice.dataset.reason = reason;
    notice.hidden = false;
    say(text);
  }

  stopRinging(callId, reason) {
    if (callId === this.acceptedCall) return; // this tab accepted it and is on its way into the room
    const known = this.calls.has(callId);
    this.removeCall(callId);
    const shown = STOP_REASONS.has(reason) ? reason : "cancelled";
    if (known || shown === "taken") this.showNotice(t(`desk.stop.${shown}`), shown);
  }

  onAccepted(m) {
    this.acceptedCall = m.call;
    for (const id of [...this.calls.keys()]) this.removeCall(id);
    this.ringer.stop();
    this.showNotice(t("desk.call.joining"), "joining");
    this.leaving = true;
    // Straight into the consultation: no second click.
    window.location.assign(m.url);
  }

  onError(m) {
    if (m.ref === "rejoin") {
      for (const button of document.querySelectorAll(".desk-rejoin")) button.disabled = false;
      const key = `desk.error.${m.code}`;
      const text = t(key);
      this.showNotice(text === key ? t("desk.error.other") : text, "error");
      return;
    }
    if (m.ref === "accept" || m.ref === "decline") {
      if (m.code === "call_taken") {
        for (const entry of [...this.calls.values()]) {
          if (entry.li.querySelector(".desk-accept")?.disabled) this.removeCall(entry.call.id);
        }
        this.showNotice(t("desk.stop.taken"), "taken");
        return;
      }
      for (const entry of [...this.calls.values()]) {
        if (entry.li.querySelector(".desk-accept")?.disabled) this.removeCall(entry.call.id);
      }
      const key = `desk.error.${m.code}`;
      const text = t(key);
      this.showNotice(text === key ? t("desk.error.other") : text, "error");
      return;
    }
    const key = `desk.error.${m.code}`;
    const text = t(key);
    say(text === key ? t("desk.error.other") : text);
  }

  // -- direct links from a counsellor (POST /api/v1/rooms/{id}/direct-invites) ------------

  directInvite(m) {
    const url = typeof m.url === "string" && m.url.startsWith("/room/") ? m.url : null;
    if (!url) return;
    const until = timeOf(m.expires_at);
    const li = el("li", { class: "desk-direct" },
      el("p", { text: t("desk.direct.item", { caller: m.caller_name || "–", title: m.room_title || "–", time: until }) }),
      el("p", {}, el("a", { class: "desk-direct-open", href: url, text: t("desk.direct.open") })));
    $("direct").prepend(li);
    $("direct-section").hidden = false;
    alarm(t("desk.direct.alert", { caller: m.caller_name || "–", title: m.room_title || "–" }));
    const left = m.expires_at * 1000 - Date.now();
    if (left > 0 && left < 2 ** 31) {
      setTimeout(() => {
        li.remove();
        $("direct-section").hidden = !$("direct").children.length;
      }, left);
    }
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        new Notification(t("desk.direct.title"), { body: t("desk.direct.alert", { caller: m.caller_name || "–", title: m.room_title || "–" }) });
      } catch {
        /* notifications unavailable */
      }
    }
  }

  // -- "zurück in die Beratung" -----------------------------------------------------------

  /** Consultations this person left while the call stands; `first`: the page just opened (focus the offer). */
  renderReturns(calls, { first = false } = {}) {
    const list = $("returns");
    const hadFocus = list.contains(document.activeElement);
    list.replaceChildren();
    $("returns-section").hidden = calls.length === 0;
    for (const call of calls) {
      const button = el("button", { type: "button", class: "button-primary desk-rejoin", "data-call": call.id,
        text: t("desk.returns.button"), "aria-label": t("desk.returns.label", { title: call.room_title || "–" }) });
      button.addEventListener("click", () => {
        if (this.send({ type: "rejoin", call: call.id })) {
          button.disabled = true;
          this.showNotice(t("desk.returns.joining"), "joining");
        }
      });
      list.append(el("li", { class: "desk-return", "data-call": call.id },
        el("p", { text: t("desk.returns.item", { title: call.room_title || "–", caller: call.caller_name || "–" }) }),
        button));
    }
    if (calls.length && first) {
      list.querySelector("button").focus();
      say(t("desk.returns.offer", { title: calls[0].room_title || "–" }));
    } else if (hadFocus) {
      (list.querySelector("button") || $("calls-title")).focus();
    }
  }

  // -- callback requests ----------------------------------------------------------------

  renderCallbacks(callbacks) {
    const list = $("callbacks");
    list.replaceChildren();
    $("callbacks-empty").hidden = callbacks.length > 0;
    for (const cb of callbacks) {
      const done = el("button", { type: "button", class: "desk-callback-done", text: t("desk.callbacks.done"),
        "aria-label": t("desk.callbacks.done_label", { caller: cb.caller_name, title: cb.room_title }) });
      done.addEventListener("click", () => {
        if (this.send({ type: "callback-done", callback: cb.id })) done.disabled = true;
      });
      list.append(el("li", { class: "desk-callback", "data-callback": cb.id },
        el("span", { class: "desk-callback-text",
          text: t("desk.callbacks.item", { caller: cb.caller_name, title: cb.room_title || "–", time: timeOf(cb.created_at) }) }),
        done));
    }
  }
}

async function main() {
  await initI18n();
  const desk = new Desk();
  Object.defineProperty(window, "deskDebug", {
    configurable: false,
    enumerable: false,
    value: Object.freeze({
      get state() { return desk.state; },
      get ringing() { return [...desk.calls.keys()]; },
      get ringtone() { return desk.ringer.playing; },
      get audio() { return desk.ringer.master ? desk.ringer.ctx.state : null; }, // "running" while the tone sounds
      drop: () => desk.drop(),
    }),
  });
  desk.start();
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  document.body.dataset.connection = "error";
});
