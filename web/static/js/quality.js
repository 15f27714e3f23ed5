// Connection quality in the room: adapts what we send to each link, shows a plain indicator
// per person, and offers audio only when even the lowest video level is too much.
//
// Every SAMPLE_MS it reads getStats() of each connection of the mesh: the loss each way
// (what the peer reported of our packets, remote-inbound-rtp, and what we miss of theirs,
// inbound-rtp; the worse counts) and the round trip. adaptation.js turns that into the video
// level, applied with RTCRtpSender.setParameters (scaleResolutionDownBy, maxBitrate): no
// renegotiation, each link on its own (a mesh has one encoder per peer); and into the
// indicator for that person ("Verbindung schwach"). The worse direction counts for the
// sender too: our video losses are mostly repaired by retransmission before the peer counts
// them, and a lossy radio or Wi-Fi link is shared by both directions.
// Audio only stops our video encodings (`active: false`) on every link; room.js is told
// through `onAudioOnly(on)` so the camera state (and the peers' flag) follows.
//
// room.js hooks it in with one call: startQuality(mesh, {onAudioOnly}). Its own DOM (the
// badge in a tile, the offer bar) is added here; its styles are css/connection.css, which the
// room and join templates load (no script adds a stylesheet: docs/pages.md, design system).

import { t } from "./i18n.js";
import { LEVELS, decide, encodingFor, initialState } from "./adaptation.js";

const SAMPLE_MS = 2000;

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/**
 * Cumulative counters of one getStats() report. Sent and remotely lost packets are kept per
 * kind: video losses are mostly repaired by retransmission (NACK) before the peer counts
 * them, audio losses are not, so the audio figure shows what the path really drops.
 */
export function readCounters(report) {
  const c = { at: 0, sent: { audio: 0, video: 0 }, remoteLost: { audio: 0, video: 0 }, received: 0, lost: 0,
    videoBytesSent: 0, rttMs: null, frameWidth: null };
  let pairRtt = null;
  report.forEach((s) => {
    const kind = s.kind === "audio" ? "audio" : "video";
    if (s.type === "outbound-rtp") {
      c.sent[kind] += s.packetsSent || 0;
      if (kind === "video") {
        c.videoBytesSent += s.bytesSent || 0;
        if (number(s.frameWidth) !== null) c.frameWidth = s.frameWidth;
      }
    } else if (s.type === "remote-inbound-rtp") {
      c.remoteLost[kind] += Math.max(0, s.packetsLost || 0);
      const rtt = number(s.roundTripTime);
      if (rtt !== null) c.rttMs = Math.max(c.rttMs ?? 0, rtt * 1000);
    } else if (s.type === "inbound-rtp") {
      c.received += s.packetsReceived || 0;
      c.lost += Math.max(0, s.packetsLost || 0);
    } else if (s.type === "candidate-pair" && (s.selected || s.nominated) && s.state === "succeeded") {
      const rtt = number(s.currentRoundTripTime);
      if (rtt !== null) pairRtt = rtt * 1000;
    }
  });
  if (c.rttMs === null) c.rttMs = pairRtt;
  return c;
}

/** Loss each way (the worse kind, for what we send) and the sent video bitrate between two readings. */
export function between(before, now, elapsedMs) {
  let sendLoss = null;
  for (const kind of ["audio", "video"]) {
    const sent = now.sent[kind] - before.sent[kind];
    const remoteLost = now.remoteLost[kind] - before.remoteLost[kind];
    if (sent > 0 && remoteLost >= 0) sendLoss = Math.max(sendLoss ?? 0, Math.min(1, remoteLost / sent));
  }
  const received = now.received - before.received;
  const lost = now.lost - before.lost;
  const receiveLoss = received + lost > 0 && lost >= 0 ? Math.min(1, lost / (received + lost)) : null;
  const bytes = now.videoBytesSent - before.videoBytesSent;
  const sentKbps = elapsedMs > 0 && bytes >= 0 ? Math.round((bytes * 8) / elapsedMs) : null;
  return { sendLoss, receiveLoss, rttMs: now.rttMs, sentKbps };
}

export class QualityMonitor {
  constructor(mesh, { onAudioOnly = () => {} } = {}) {
    this.mesh = mesh;
    this.onAudioOnly = onAudioOnly;
    this.links = new Map(); // peerId -> {pc, mark, state, figures}
    this.audioOnly = false;
    this.offered = false;
    this.timer = null;
    this.busy = false;
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.tick().catch((e) => console.warn("quality:", e)).finally(() => { this.busy = false; });
    }, SAMPLE_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async tick() {
    const current = new Set();
    for (const [peerId, link] of this.mesh.links) {
      const pc = link.pc;
      if (!pc || pc.connectionState !== "connected") continue;
      current.add(peerId);
      let entry = this.links.get(peerId);
      if (!entry || entry.pc !== pc) {
        entry = { pc, mark: null, state: initialState(), figures: {} };
        this.links.set(peerId, entry);
      }
      let report;
      try {
        report = await pc.getStats();
      } catch {
        continue; // closed meanwhile
      }
      const now = readCounters(report);
      now.at = performance.now();
      if (entry.mark) {
        const d = between(entry.mark, now, now.at - entry.mark.at);
        const loss = d.sendLoss === null && d.receiveLoss === null ? null : Math.max(d.sendLoss ?? 0, d.receiveLoss ?? 0);
        entry.state = decide(entry.state, { loss, rttMs: d.rttMs });
        entry.figures = { ...d, frameWidth: now.frameWidth };
      }
      entry.mark = now;
      await this.apply(pc, entry.state.level);
      this.render(peerId, entry.state.indicator);
      if (entry.state.offerAudioOnly && !this.offered && !this.audioOnly) this.offer();
    }
    for (const peerId of [...this.links.keys()]) if (!current.has(peerId)) this.links.delete(peerId);
    this.renderSelf();
  }

  /** Set the video encoding of one connection to `level` (or off in audio-only mode). */
  async apply(pc, level) {
    const transceiver = this.mesh.transceiverOf(pc, "video");
    const sender = transceiver && transceiver.sender;
    if (!sender || typeof sender.getParameters !== "function") return;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) return; // not negotiated yet
    const want = encodingFor(level);
    const encoding = params.encodings[0];
    let dirty = false;
    if (encoding.scaleResolutionDownBy !== want.scaleResolutionDownBy) {
      encoding.scaleResolutionDownBy = want.scaleResolutionDownBy;
      dirty = true;
    }
    if (want.maxBitrate === null) {
      if (encoding.maxBitrate !== undefined) {
        delete encoding.maxBitrate;
        dirty = true;
      }
    } else if (encoding.maxBitrate !== want.maxBitrate) {
      encoding.maxBitrate = want.maxBitrate;
      dirty = true;
    }
    if (encoding.active !== !this.audioOnly) {
      encoding.active = !this.audioOnly;
      dirty = true;
    }
    if (dirty) await sender.setParameters(params);
  }

  /** Audio only on or off: our video encodings stop or start on every connection at once. */
  async setAudioOnly(on) {
    on = Boolean(on);
    if (this.audioOnly === on) return;
    this.audioOnly = on;
    this.renderOffer();
    const jobs = [];
    for (const [peerId, entry] of this.links) {
      const link = this.mesh.links.get(peerId);
      if (link && link.pc === entry.pc) jobs.push(this.apply(entry.pc, entry.state.level).catch((e) => console.warn(e)));
    }
    await Promise.all(jobs);
    this.onAudioOnly(on);
  }

  // -- what people see ----------------------------------------------------------

  render(peerId, indicator) {
    const tile = document.querySelector(`.tile[data-peer="${CSS.escape(peerId)}"]`);
    if (tile) badge(tile, indicator);
  }

  /** Our own tile is weak when every connection is: then the trouble is most likely ours. */
  renderSelf() {
    const tile = document.querySelector('.tile.self');
    if (!tile) return;
    const entries = [...this.links.values()];
    badge(tile, entries.length && entries.every((e) => e.state.indicator === "weak") ? "weak" : "good");
  }

  offer() {
    this.offered = true;
    this.renderOffer(true);
  }

  renderOffer(offering = false) {
    let bar = document.getElementById("quality-offer");
    if (!offering && !this.audioOnly) {
      bar?.remove();
      return;
    }
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "quality-offer";
      bar.className = "quality-offer";
      bar.setAttribute("role", "status");
      const tiles = document.getElementById("tiles");
      if (tiles) tiles.before(bar);
      else document.body.append(bar);
    }
    const text = document.createElement("p");
    const buttons = document.createElement("p");
    buttons.className = "quality-offer-buttons";
    const button = (label, onClick, extra = "") => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `button small ${extra}`.trim();
      b.textContent = label;
      b.addEventListener("click", onClick);
      buttons.append(b);
      return b;
    };
    if (this.audioOnly) {
      bar.dataset.mode = "audio-only";
      text.textContent = t("room.quality.audio_only");
      button(t("room.quality.video_again"), () => this.setAudioOnly(false), "quality-video-again");
    } else {
      bar.dataset.mode = "offer";
      text.textContent = t("room.quality.offer");
      const accept = button(t("room.quality.accept"), () => this.setAudioOnly(true), "quality-accept");
      button(t("room.quality.dismiss"), () => bar.remove(), "quality-dismiss");
      queueMicrotask(() => accept.focus({ preventScroll: true }));
    }
    bar.replaceChildren(text, buttons);
  }

  // -- for tests and support ------------------------------------------------------

  snapshot() {
    const out = {};
    for (const [peerId, e] of this.links) {
      const level = e.state.level;
      out[peerId] = { level, scale: LEVELS[level].scale, maxKbps: LEVELS[level].maxKbps, indicator: e.state.indicator,
        offerAudioOnly: e.state.offerAudioOnly, ...e.figures };
    }
    return { audioOnly: this.audioOnly, offered: this.offered, links: out };
  }
}

function badge(tile, indicator) {
  tile.dataset.quality = indicator;
  let node = tile.querySelector(".quality-badge");
  if (indicator !== "weak") {
    node?.remove();
    return;
  }
  if (!node) {
    node = document.createElement("span");
    node.className = "quality-badge";
    (tile.querySelector(".tile-media") || tile).append(node);
  }
  node.textContent = t("room.quality.weak");
}

/** Start watching `mesh`'s connections; returns the monitor (setAudioOnly, snapshot, stop). */
export function startQuality(mesh, options) {
  const monitor = new QualityMonitor(mesh, options);
  monitor.start();
  return monitor;
}
