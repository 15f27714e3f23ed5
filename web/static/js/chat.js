// Text chat straight between the participants: one RTCDataChannel per peer connection.
//
// The channel is negotiated out of band (`negotiated: true`, the same id on both sides:
// mesh.js CHAT_CHANNEL_ID), so neither side has to wait for `datachannel` events and
// both agree on it without any extra signalling. Messages never go through the server
// and are never stored: they live only in the open page. A message is sent to every
// peer whose channel is open; a peer without a chat channel (the Python participant,
// which offers no data channel) simply does not get it.
//
// Wire format: a JSON object {"type": "chat", "text": "…"}; anything else is ignored.
//
// Events (`event.detail`):
//   "message"  {peerId, text}
//   "change"   {open: number}   how many peers can be reached now

export const MAX_CHAT_CHARS = 1000;

export class Chat extends EventTarget {
  constructor() {
    super();
    this.channels = new Map(); // peerId -> RTCDataChannel (the current connection's)
  }

  /** Use `channel` for `peerId` (a new connection replaces the old channel). */
  attach(peerId, channel) {
    this.channels.set(peerId, channel);
    channel.addEventListener("open", () => this.changed());
    channel.addEventListener("close", () => {
      if (this.channels.get(peerId) === channel) this.changed();
    });
    channel.addEventListener("message", (event) => {
      if (this.channels.get(peerId) !== channel || typeof event.data !== "string") return;
      if (event.data.length > MAX_CHAT_CHARS * 8) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || message.type !== "chat" || typeof message.text !== "string") return;
      const text = message.text.trim().slice(0, MAX_CHAT_CHARS);
      if (text) this.dispatchEvent(new CustomEvent("message", { detail: { peerId, text } }));
    });
    this.changed();
  }

  detach(peerId) {
    if (this.channels.delete(peerId)) this.changed();
  }

  /** How many peers a message would reach now. */
  get openCount() {
    let n = 0;
    for (const channel of this.channels.values()) if (channel.readyState === "open") n += 1;
    return n;
  }

  /** Send `text` to every peer with an open channel; the number of peers it went to. */
  send(text) {
    const clean = String(text).trim().slice(0, MAX_CHAT_CHARS);
    if (!clean) return 0;
    const frame = JSON.stringify({ type: "chat", text: clean });
    let sent = 0;
    for (const channel of this.channels.values()) {
      if (channel.readyState !== "open") continue;
      try {
        channel.send(frame);
        sent += 1;
      } catch {
        /* closing: the peer is reconnecting */
      }
    }
    return sent;
  }

  changed() {
    this.dispatchEvent(new CustomEvent("change", { detail: { open: this.openCount } }));
  }
}
