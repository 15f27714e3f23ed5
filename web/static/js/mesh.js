// The WebRTC mesh: one RTCPeerConnection per peer, negotiated as docs/protocol.md says.
//
// * Who offers: the newcomer (and the resumed side) offers to every peer listed online in
//   `welcome`, always on a fresh connection; the others wait for that offer.
// * Perfect negotiation: towards a peer we are polite when our seat id sorts before the
//   peer's. Impolite: a colliding offer (and its candidates) is ignored; so is one that
//   collides with our offer for our own `welcome` when the peer has not joined or resumed
//   since (we came in later: ours is the current session, and the peer, having heard
//   `peer-joined`/`peer-resumed` of us, answers it whichever side is polite). Polite: our own
//   offer gives way. Because this client only ever offers on a fresh connection (join,
//   resume, recovery of a failed connection), "giving way" closes the connection that
//   holds only our unanswered offer and answers on a new one, exactly as the Python
//   participant does; on a connection that already carried media the browser's implicit
//   rollback is used.
// * Resume ("Renegotiation after a resume: a fresh connection per peer"): the resumed side
//   replaces every connection; the other side keeps its old one until the new offer comes
//   and answers it on a new connection when the offer starts a new session (`peer-joined`
//   or `peer-resumed` since, a new `a=ice-ufrag`, or no usable connection).
// * Answers that find no `have-local-offer` are stale and ignored.
// * Every operation of one peer runs on one promise chain, in arrival order.
//
// Screen sharing swaps the outgoing video track with `replaceTrack`, so no renegotiation is
// needed and every pair of clients (browser or Python) stays interoperable.
//
// Events (`event.detail`):
//   "track"       {peerId, stream, generation}   a remote stream (new object per connection)
//   "connection"  {peerId, state}                 RTCPeerConnection.connectionState changes
//   "channel"     {peerId, channel}               the negotiated chat data channel of a connection
//   "link-closed" {peerId}
//   "gathered"    {peerId, relay}                 candidate gathering ended; relay: a TURN candidate was among them

const KINDS = ["audio", "video"];
const STATS_INTERVAL_MS = 5000;
const RESTART_DELAY_MS = 2000;
export const CHAT_CHANNEL_ID = 0;

function iceUfrag(sdp) {
  const match = /^a=ice-ufrag:(.+)$/m.exec(sdp || "");
  return match ? match[1].trim() : null;
}

function clamp(value, lo, hi) {
  if (typeof value !== "number" || !Number.isFinite(value)) return undefined;
  return Math.min(hi, Math.max(lo, value));
}

/** The candidate pair in use: Firefox marks it `selected`; otherwise the nominated, succeeded one. */
function selectedPair(report) {
  let found = null;
  report.forEach((s) => {
    if (s.type !== "candidate-pair") return;
    if (s.selected === true) found = s;
    else if (!found && s.nominated && s.state === "succeeded") found = s;
  });
  return found;
}

class Link {
  constructor(mesh, peerId) {
    this.mesh = mesh;
    this.peerId = peerId;
    this.pc = null;
    this.generation = 0;
    this.stream = null;
    this.channel = null;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.expectFresh = false;
    this.offerWins = false; // our pending offer is for our latest welcome: it beats a colliding one
    this.pendingCandidates = [];
    this.chain = Promise.resolve();
    this.restartTimer = null;
    this.statsMark = null;
    this.closed = false;
    // what happened, for diagnostics and tests
    this.counters = { offers: 0, answers: 0, ignoredOffers: 0, yielded: 0, restarts: 0, staleAnswers: 0 };
  }

  get polite() {
    return (this.mesh.selfId || "") < this.peerId;
  }

  enqueue(operation) {
    this.chain = this.chain.then(() => (this.closed ? undefined : operation())).catch((error) => {
      console.warn(`peer ${this.peerId}:`, error);
    });
    return this.chain;
  }
}

export class Mesh extends EventTarget {
  /**
   * @param {object} options
   * @param {(message: object) => boolean} options.send   sends a protocol message
   * @param {{ready: Promise<void>, stream: MediaStream|null, track(kind: string): MediaStreamTrack|null}} options.media
   */
  constructor({ send, media }) {
    super();
    this.send = send;
    this.media = media;
    this.selfId = null;
    this.iceServers = [];
    this.links = new Map();
    this.epoch = 0;
    this.statsTimer = null;
    this.sentStats = 0;
  }

  // -- server messages ---------------------------------------------------------

  /** `welcome` (join, admission or resume): fresh connections to every online peer. */
  welcome(message) {
    this.selfId = message.self.id;
    this.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
    this.epoch += 1;
    const epoch = this.epoch;
    for (const peerId of [...this.links.keys()]) this.dropLink(peerId);
    for (const peer of message.peers || []) {
      const link = this.link(peer.id);
      if (peer.connection === "reconnecting") {
        link.expectFresh = true; // it offers to us when it is back
      } else {
        link.enqueue(() => this.offerFresh(link, epoch, true));
      }
    }
    this.startStats();
  }

  peerJoined(peerId) {
    const link = this.link(peerId);
    link.expectFresh = true;
    link.offerWins = false;
  }

  peerResumed(peerId) {
    // Keep the old connection (media may still flow) until the resumed side offers; its
    // offer is newer than any of ours still pending.
    const link = this.link(peerId);
    link.expectFresh = true;
    link.offerWins = false;
  }

  peerLeft(peerId) {
    this.dropLink(peerId);
  }

  signal(message) {
    const peerId = message.from;
    const data = message.data;
    if (typeof peerId !== "string" || !data || typeof data !== "object") return;
    const link = this.link(peerId);
    if ("description" in data) link.enqueue(() => this.onDescription(link, data.description));
    else if ("candidate" in data) link.enqueue(() => this.onCandidate(link, data.candidate));
  }

  /** The socket is gone for good (ended, removed, left): close everything. */
  close() {
    clearInterval(this.statsTimer);
    this.statsTimer = null;
    for (const peerId of [...this.links.keys()]) this.dropLink(peerId);
  }

  // -- local media -------------------------------------------------------------

  /** Send `track` (or nothing) as our outgoing `kind` on every connection. */
  async replaceTrack(kind, track) {
    const jobs = [];
    for (const link of this.links.values()) {
      const transceiver = link.pc && this.transceiverOf(link.pc, kind);
      if (transceiver) jobs.push(transceiver.sender.replaceTrack(track).catch((e) => console.warn(e)));
    }
    await Promise.all(jobs);
  }

  transceiverOf(pc, kind) {
    return pc.getTransceivers().find((t) => !t.stopped && t.receiver.track && t.receiver.track.kind === kind
      && t.currentDirection !== "stopped") || null;
  }

  // -- connections -------------------------------------------------------------

  link(peerId) {
    let link = this.links.get(peerId);
    if (!link) {
      link = new Link(this, peerId);
      this.links.set(peerId, link);
    }
    return link;
  }

  dropLink(peerId) {
    const link = this.links.get(peerId);
    if (!link) return;
    this.links.delete(peerId);
    link.closed = true;
    clearTimeout(link.restartTimer);
    this.closePc(link);
    this.emit("link-closed", { peerId });
  }

  closePc(link) {
    const pc = link.pc;
    link.pc = null;
    if (link.channel) {
      try { link.channel.close(); } catch { /* closed already */ }
      link.channel = null;
    }
    if (pc) {
      try { pc.close(); } catch { /* closed already */ }
    }
  }

  /** Replace the link's connection with a fresh one (local tracks are attached by the caller). */
  newPc(link) {
    this.closePc(link);
    clearTimeout(link.restartTimer);
    link.generation += 1;
    link.makingOffer = false;
    link.ignoreOffer = false;
    link.offerWins = false;
    link.pendingCandidates = [];
    link.statsMark = null;
    link.relayGathered = false;
    const generation = link.generation;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const stream = new MediaStream();
    link.pc = pc;
    link.stream = stream;

    pc.addEventListener("track", (event) => {
      if (link.pc !== pc) return;
      if (!stream.getTracks().includes(event.track)) stream.addTrack(event.track);
      this.emit("track", { peerId: link.peerId, stream, generation });
    });
    pc.addEventListener("icecandidate", (event) => {
      if (link.pc !== pc) return;
      const c = event.candidate;
      if (c && / typ relay /.test(` ${c.candidate} `)) link.relayGathered = true;
      if (!c) this.emit("gathered", { peerId: link.peerId, relay: link.relayGathered });
      const candidate = c && c.candidate
        ? { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null,
          usernameFragment: c.usernameFragment ?? null }
        : null;
      if (c && !c.candidate) return; // Chrome's per-transport end marker; the null event follows
      this.send({ type: "signal", to: link.peerId, data: { candidate } });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (link.pc !== pc) return;
      this.emit("connection", { peerId: link.peerId, state: pc.connectionState });
      if (pc.connectionState === "failed") this.scheduleRestart(link, pc);
    });
    pc.addEventListener("negotiationneeded", () => {
      // The first offer of a connection is explicit; this only serves later changes.
      link.enqueue(() => this.renegotiate(link, pc));
    });
    this.emit("connection", { peerId: link.peerId, state: pc.connectionState });
    return pc;
  }

  openChannel(link, pc) {
    const channel = pc.createDataChannel("chat", { negotiated: true, id: CHAT_CHANNEL_ID, ordered: true });
    link.channel = channel;
    this.emit("channel", { peerId: link.peerId, channel });
  }

  /**
   * Newcomer, resumed side, or recovery: a fresh connection and an offer on it. `wins`: the
   * offer is for our own welcome, so a colliding offer of a peer that has not joined or
   * resumed since is older and gives way.
   */
  async offerFresh(link, epoch, wins = false) {
    await this.media.ready;
    if (epoch !== this.epoch || link.closed) return;
    const pc = this.newPc(link);
    link.offerWins = wins && !link.expectFresh;
    for (const kind of KINDS) {
      const track = this.media.track(kind);
      const streams = this.media.stream ? [this.media.stream] : [];
      pc.addTransceiver(track || kind, { direction: "sendrecv", streams });
    }
    this.openChannel(link, pc);
    link.makingOffer = true;
    try {
      await pc.setLocalDescription(await pc.createOffer());
    } finally {
      link.makingOffer = false;
    }
    if (epoch !== this.epoch || link.pc !== pc) return; // superseded meanwhile
    link.counters.offers += 1;
    this.send({ type: "signal", to: link.peerId, data: { description: { type: "offer", sdp: pc.localDescription.sdp } } });
  }

  /** A later change on a live connection (perfect negotiation's negotiationneeded). */
  async renegotiate(link, pc) {
    if (link.pc !== pc || pc.signalingState !== "stable" || !pc.remoteDescription) return;
    link.makingOffer = true;
    try {
      await pc.setLocalDescription();
    } finally {
      link.makingOffer = false;
    }
    if (link.pc !== pc || !pc.localDescription || pc.localDescription.type !== "offer") return;
    this.send({ type: "signal", to: link.peerId, data: { description: { type: "offer", sdp: pc.localDescription.sdp } } });
  }

  scheduleRestart(link, pc) {
    clearTimeout(link.restartTimer);
    link.restartTimer = setTimeout(() => {
      if (link.closed || link.pc !== pc || pc.connectionState !== "failed") return;
      link.counters.restarts += 1;
      link.enqueue(() => this.offerFresh(link, this.epoch));
    }, RESTART_DELAY_MS + Math.random() * 1000);
  }

  async onDescription(link, description) {
    if (!description || typeof description !== "object") return;
    if (description.type === "offer") {
      await this.onOffer(link, description.sdp || "");
    } else if (description.type === "answer") {
      const pc = link.pc;
      if (!pc || pc.signalingState !== "have-local-offer") {
        link.counters.staleAnswers += 1; // an answer to a connection since replaced
        return;
      }
      link.ignoreOffer = false;
      await pc.setRemoteDescription({ type: "answer", sdp: description.sdp });
      await this.flushCandidates(link, pc);
    }
    // "rollback" is local in perfect negotiation: nothing to do here.
  }

  async onOffer(link, sdp) {
    await this.media.ready;
    if (link.closed) return;
    let pc = link.pc;
    let fresh = false;
    if (!pc || pc.connectionState === "closed" || pc.connectionState === "failed") {
      fresh = true;
    } else if (link.expectFresh) {
      fresh = true; // peer-joined / peer-resumed since: a new session wins over our pending offer
    } else if (pc.remoteDescription && iceUfrag(pc.remoteDescription.sdp) !== iceUfrag(sdp)) {
      fresh = true;
    }
    if (!fresh) {
      const collision = link.makingOffer || pc.signalingState !== "stable";
      link.ignoreOffer = collision && (link.offerWins || !link.polite);
      if (link.ignoreOffer) {
        link.counters.ignoredOffers += 1;
        return;
      }
      if (collision) {
        link.counters.yielded += 1;
        // Our pending offer sits on a connection that never carried media: give way
        // by answering on a fresh connection (same end state as a rollback).
        if (!pc.remoteDescription) fresh = true;
      }
    }
    if (fresh) {
      link.expectFresh = false;
      pc = this.newPc(link);
      if (/^m=application /m.test(sdp)) this.openChannel(link, pc);
      await pc.setRemoteDescription({ type: "offer", sdp });
      await this.attachLocalTracks(pc);
    } else {
      await pc.setRemoteDescription({ type: "offer", sdp }); // implicit rollback when needed
    }
    await pc.setLocalDescription(await pc.createAnswer());
    if (link.pc !== pc) return;
    link.counters.answers += 1;
    this.send({ type: "signal", to: link.peerId, data: { description: { type: "answer", sdp: pc.localDescription.sdp } } });
    await this.flushCandidates(link, pc);
  }

  /** Answerer: send our tracks on the transceivers the remote offer created. */
  async attachLocalTracks(pc) {
    const used = new Set();
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track && transceiver.receiver.track.kind;
      if (!kind || used.has(kind) || transceiver.stopped) continue;
      used.add(kind);
      const track = this.media.track(kind);
      transceiver.direction = "sendrecv";
      if (track) {
        await transceiver.sender.replaceTrack(track);
        if (this.media.stream && transceiver.sender.setStreams) transceiver.sender.setStreams(this.media.stream);
      }
    }
  }

  async onCandidate(link, candidate) {
    const pc = link.pc;
    if (!pc || link.ignoreOffer) return;
    if (!pc.remoteDescription) {
      link.pendingCandidates.push(candidate);
      return;
    }
    await this.addCandidate(pc, candidate);
  }

  async flushCandidates(link, pc) {
    const pending = link.pendingCandidates;
    link.pendingCandidates = [];
    for (const candidate of pending) await this.addCandidate(pc, candidate);
  }

  async addCandidate(pc, candidate) {
    try {
      if (!candidate || !candidate.candidate) await pc.addIceCandidate();
      else await pc.addIceCandidate(candidate);
    } catch (error) {
      // A candidate of a session since replaced (other ufrag): harmless.
      console.debug("candidate not added:", error && error.message);
    }
  }

  // -- stats -------------------------------------------------------------------

  startStats() {
    if (this.statsTimer) return;
    this.statsTimer = setInterval(() => { this.sendStats().catch((e) => console.warn("stats:", e)); }, STATS_INTERVAL_MS);
  }

  /** One `stats` message, in the shape of docs/protocol.md, from every connection's getStats(). */
  async collectStats() {
    const peers = {};
    for (const link of [...this.links.values()].slice(0, 8)) {
      if (!link.pc) continue;
      peers[link.peerId] = await this.entry(link, link.pc);
    }
    return peers;
  }

  async sendStats() {
    const peers = await this.collectStats();
    if (!Object.keys(peers).length) return;
    if (this.send({ type: "stats", peers })) this.sentStats += 1;
  }

  async entry(link, pc) {
    const entry = { state: pc.connectionState };
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return entry;
    }
    let received = 0;
    let lost = 0;
    let bytes = 0;
    let pair = null;
    let transports = 0;
    let fps;
    let jitter;
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        received += s.packetsReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        if (s.kind === "video" && typeof s.framesPerSecond === "number") fps = s.framesPerSecond;
        if (s.kind === "audio" && typeof s.jitter === "number") jitter = s.jitter * 1000;
      } else if (s.type === "transport") {
        transports += 1;
        bytes += s.bytesReceived || 0;
        if (s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair;
      }
    });
    if (!pair) pair = selectedPair(report);
    // Firefox has no "transport" entries: the selected pair carries the bytes.
    if (!transports && pair) bytes = pair.bytesReceived || 0;
    if (pair) {
      const rtt = clamp(pair.currentRoundTripTime * 1000, 0, 60000);
      if (rtt !== undefined) entry.rtt_ms = Math.round(rtt * 10) / 10;
      const local = report.get(pair.localCandidateId);
      if (local && ["host", "srflx", "prflx", "relay"].includes(local.candidateType)) entry.candidate_type = local.candidateType;
    }
    if (received + lost > 0) entry.loss = clamp(Math.round((lost / (received + lost)) * 10000) / 10000, 0, 1);
    const j = clamp(jitter, 0, 60000);
    if (j !== undefined) entry.jitter_ms = Math.round(j * 10) / 10;
    const f = clamp(fps, 0, 240);
    if (f !== undefined) entry.fps = f;
    const now = performance.now();
    if (link.statsMark && now > link.statsMark.at) {
      const kbps = ((bytes - link.statsMark.bytes) * 8) / (now - link.statsMark.at);
      const b = clamp(kbps, 0, 100000);
      if (b !== undefined) entry.bitrate_kbps = Math.round(b * 10) / 10;
    }
    link.statsMark = { at: now, bytes };
    return entry;
  }

  // -- for tests and diagnostics -------------------------------------------------

  /** Video received per peer on the current connection: frames decoded, state, generation. */
  async inboundVideo() {
    const result = {};
    for (const [peerId, link] of this.links) {
      const pc = link.pc;
      const info = { state: pc ? pc.connectionState : "new", generation: link.generation, framesDecoded: 0 };
      if (pc) {
        try {
          (await pc.getStats()).forEach((s) => {
            if (s.type === "inbound-rtp" && s.kind === "video") info.framesDecoded += s.framesDecoded || 0;
          });
        } catch { /* closed meanwhile */ }
      }
      result[peerId] = info;
    }
    return result;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
