// The signalling client: one WebSocket to /ws that follows docs/protocol.md.
//
// * The first message is `join` with the token (never in the URL) or `resume` with the
//   resume secret; a refused resume falls back to `join` once when a token is known.
// * After an unexpected close it reconnects by itself with backoff and `resume`s the
//   same seat; the close codes of the protocol that mean "over" stop it.
// * An application `ping` every few seconds finds a dead socket that the browser itself
//   would not notice for minutes; a missing `pong` drops it and resumes.
// * Before that, a new socket must get its answer (`welcome`, `waiting` or a refusal) within
//   ANSWER_TIMEOUT_MS of being opened: a socket opened during an outage can hang half-open
//   (never connected, or connected to nothing) long after the network is back; it is then
//   given up and the next attempt resumes the seat while the server still keeps it.
//
// Events (EventTarget, `event.detail`):
//   "message"    every server message (after the client's own bookkeeping)
//   "status"     {status: "connecting" | "open" | "reconnecting" | "closed"}
//   "final"      {reason: "left" | "ended" | "removed" | "denied" | "replaced" | "error",
//                 code: protocol error code or null, closeCode}

const FINAL_CLOSE = new Set([1000, 4002, 4401, 4403, 4409, 4410, 4411, 4412]);
const PING_INTERVAL_MS = 5000;
const PONG_TIMEOUT_MS = 12000;
const ANSWER_TIMEOUT_MS = 8000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 5000];

export class SignallingClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url        the WebSocket URL (ws[s]://host/ws)
   * @param {string|null} options.token the join token, if known
   * @param {string|null} options.secret a resume secret from earlier, if any
   * @param {string|null} options.name  a typed display name (citizens)
   * @param {string} options.room       the room id of the page (sent with `join`)
   * @param {(secret: string|null) => void} options.onSecret keeps the resume secret
   */
  constructor({ url, token = null, secret = null, name = null, room, onSecret = () => {} }) {
    super();
    this.url = url;
    this.token = token;
    this.secret = secret;
    this.name = name;
    this.room = room;
    this.onSecret = onSecret;
    this.ws = null;
    this.status = "new";
    this.seated = false; // the current socket got welcome/waiting
    this.everSeated = false;
    this.finished = false;
    this.leaving = false;
    this.lastError = null;
    this.attempt = 0;
    this.pingId = 0;
    this.lastPong = 0;
    this.tokenTried = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.answerTimer = null;
    this.sockets = 0; // how many sockets were opened (for tests and diagnostics)
    this.onOnline = () => { if (this.status === "reconnecting") this.retryNow(); };
    window.addEventListener("online", this.onOnline);
  }

  start() {
    this.connect();
  }

  /** Send a protocol message; false when the socket is not open (the message is dropped). */
  send(message) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.seated) return false;
    try {
      ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  /** Leave on purpose: `leave`, then the server closes with 1000. */
  leave() {
    this.leaving = true;
    const sent = this.send({ type: "leave" });
    if (!sent) this.finish("left", null, 1000);
    // The server closes at once; if it does not, stop waiting after a moment.
    setTimeout(() => this.finish("left", null, 1000), 1500);
  }

  /** Drop the socket as a network failure would (tests and diagnostics). */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    // Forget the socket first: the server answers our close frame with 1000, which must
    // not read as "the server closed the seat normally".
    this.ws = null;
    try { ws.close(4000, "dropped by the client"); } catch { /* closing already */ }
    this.closed(1006);
  }

  // -- internals -------------------------------------------------------------

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: { status } }));
  }

  firstMessage() {
    if (this.secret) return { type: "resume", secret: this.secret };
    if (this.token) {
      this.tokenTried = true;
      const join = { type: "join", token: this.token, room: this.room };
      if (this.name) join.name = this.name;
      return join;
    }
    return null;
  }

  connect() {
    if (this.finished) return;
    clearTimeout(this.retryTimer);
    const first = this.firstMessage();
    if (!first) {
      this.finish("error", "no_token", null);
      return;
    }
    this.setStatus(this.everSeated ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.sockets += 1;
    this.seated = false;
    this.lastError = null;
    this.awaitAnswer(ws);
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      ws.send(JSON.stringify(first));
      this.lastPong = Date.now();
      this.startPing(ws);
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message === "object") this.receive(message);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.closed(event.code);
    });
  }

  receive(message) {
    switch (message.type) {
      case "welcome":
      case "waiting":
        clearTimeout(this.answerTimer);
        this.seated = true;
        this.everSeated = true;
        this.attempt = 0;
        if (message.resume_secret) {
          this.secret = message.resume_secret;
          this.onSecret(this.secret);
        }
        this.setStatus("open");
        break;
      case "pong":
        this.lastPong = Date.now();
        break;
      case "error":
        this.lastError = message.code || null;
        break;
      case "ended":
        this.dispatch(message);
        this.finish("ended", message.reason || null, 4411);
        return;
      case "removed":
        this.dispatch(message);
        this.finish("removed", null, 4410);
        return;
      case "denied":
        this.dispatch(message);
        this.finish("denied", null, 4403);
        return;
      default:
        break;
    }
    this.dispatch(message);
  }

  dispatch(message) {
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  closed(closeCode) {
    this.stopPing();
    clearTimeout(this.answerTimer);
    const wasSeated = this.seated;
    this.seated = false;
    this.ws = null;
    if (this.finished) return;
    if (this.leaving) {
      this.finish("left", null, closeCode);
      return;
    }
    const error = this.lastError;
    if (closeCode === 4412 || (closeCode === 4411 && !wasSeated && error === "room_ended" && this.secret)) {
      // The seat is gone (grace over) or the secret is stale: join again with the
      // token, once, if we have one; the server then names the real reason.
      this.secret = null;
      this.onSecret(null);
      if (this.token && !this.tokenTried) {
        this.connect();
        return;
      }
    }
    if (closeCode === 4411) {
      this.finish(wasSeated ? "ended" : "error", error || "room_ended", closeCode);
      return;
    }
    if (closeCode === 4409) {
      this.finish(wasSeated ? "replaced" : "error", wasSeated ? "replaced" : error || "identity_in_use", closeCode);
      return;
    }
    if (closeCode === 4410) { this.finish("removed", null, closeCode); return; }
    if (closeCode === 4403) { this.finish("denied", null, closeCode); return; }
    if (FINAL_CLOSE.has(closeCode)) {
      this.finish("error", error || (closeCode === 1000 ? "closed" : "protocol"), closeCode);
      return;
    }
    // Anything else is a drop: network, server restart (1001), internal error. Resume.
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.finished) return;
    this.setStatus(this.everSeated ? "reconnecting" : "connecting");
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const delay = base / 2 + Math.random() * base / 2;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.finished || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Give `ws` up when it has not been answered in time (half-open: the network lost it). */
  awaitAnswer(ws) {
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => {
      if (ws !== this.ws || this.seated || this.finished) return;
      this.ws = null;
      try { ws.close(4000, "no answer"); } catch { /* never opened */ }
      this.closed(1006);
    }, ANSWER_TIMEOUT_MS);
  }

  startPing(ws) {
    this.stopPing();
    let outstanding = null; // {id, at} of the ping that still waits for its pong
    this.pingTimer = setInterval(() => {
      if (ws !== this.ws || ws.readyState !== WebSocket.OPEN || !this.seated) return;
      const now = Date.now();
      if (outstanding && this.lastPong < outstanding.at) {
        // Judge only a ping that really went out: a throttled background tab fires this
        // timer late, but the pong (an event, not a timer) would still have arrived.
        if (now - outstanding.at > PONG_TIMEOUT_MS) {
          this.ws = null; // no answer for too long: dead, even if the browser has not noticed
          try { ws.close(4000, "heartbeat lost"); } catch { /* already closing */ }
          this.closed(1006);
        }
        return;
      }
      this.pingId += 1;
      outstanding = { id: this.pingId, at: now };
      try { ws.send(JSON.stringify({ type: "ping", id: this.pingId })); } catch { /* the close event follows */ }
    }, PING_INTERVAL_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  finish(reason, code, closeCode) {
    if (this.finished) return;
    this.finished = true;
    this.stopPing();
    clearTimeout(this.answerTimer);
    clearTimeout(this.retryTimer);
    window.removeEventListener("online", this.onOnline);
    if (reason !== "replaced") {
      this.secret = null;
      this.onSecret(null);
    }
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(1000); } catch { /* ignore */ }
    }
    this.setStatus("closed");
    this.dispatchEvent(new CustomEvent("final", { detail: { reason, code, closeCode } }));
  }
}

/** The signalling URL of this page's origin. */
export function signallingUrl(location = window.location) {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}
