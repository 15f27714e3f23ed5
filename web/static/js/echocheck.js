// The device and network check: send camera and microphone to the server's echo peer
// (POST /echo/offer), show the picture that comes back, time round trips on the "echo"
// data channel, and give a plain verdict. Nothing is stored anywhere.

const PING_EVERY_MS = 250;
const MAX_PINGS = 40;
const MIN_SAMPLES = 5;
const MIN_RUN_MS = 3000; // enough packets to say something about loss
const TIMEOUT_MS = 15000;
const GATHER_MS = 4000;

// Thresholds of the verdict: round trip to our server (ms) and packet loss of the echoed video.
export const LIMITS = { good: { rttMs: 150, loss: 0.02 }, okay: { rttMs: 400, loss: 0.08 } };

/** "good" | "okay" | "poor" | "failed" from what the check measured. */
export function verdictFor({ connected, rttMs, loss, videoSent, videoBack }) {
  if (!connected || rttMs === null || rttMs === undefined) return "failed";
  if (videoSent && !videoBack) return "poor";
  const lost = loss || 0;
  if (rttMs <= LIMITS.good.rttMs && lost <= LIMITS.good.loss) return "good";
  if (rttMs <= LIMITS.okay.rttMs && lost <= LIMITS.okay.loss) return "okay";
  return "poor";
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms); // use what we have: host candidates come first
  });
}

export class EchoCheck {
  /**
   * @param {object} o
   * @param {string} o.token the join token (the echo peer checks it, does not spend it)
   * @param {RTCIceServer[]} o.iceServers
   * @param {MediaStream} o.stream camera and/or microphone
   * @param {HTMLVideoElement} o.video where the returned picture is shown
   * @param {(p: {rttMs: number|null, videoBack: boolean, connected: boolean}) => void} o.onProgress
   */
  constructor({ token, iceServers, stream, video, onProgress }) {
    Object.assign(this, { token, iceServers: iceServers || [], stream, video, onProgress });
    this.pc = null;
    this.closed = false;
    this.samples = [];
  }

  /** Run the check; resolves with {verdict, rttMs, loss, framesDecoded, code}. */
  async run() {
    const videoSent = this.stream.getVideoTracks().length > 0;
    const pc = (this.pc = new RTCPeerConnection({ iceServers: this.iceServers }));
    for (const track of this.stream.getTracks()) {
      const init = { direction: "sendrecv", streams: [this.stream] };
      // A modest stream: the check is about the path, and the server re-encodes what it echoes.
      if (track.kind === "video") init.sendEncodings = [{ maxBitrate: 600000, maxFramerate: 15 }];
      pc.addTransceiver(track, init);
    }
    const channel = pc.createDataChannel("echo", { ordered: true });
    pc.addEventListener("track", (event) => {
      if (event.track.kind === "video") this.video.srcObject = new MediaStream([event.track]);
    });
    const sentAt = new Map();
    channel.addEventListener("message", (event) => {
      let n;
      try {
        n = JSON.parse(event.data).n;
      } catch {
        return;
      }
      if (sentAt.has(n)) {
        this.samples.push(performance.now() - sentAt.get(n));
        sentAt.delete(n);
      }
    });

    const started = performance.now();
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, GATHER_MS);
    } catch {
      return { verdict: "failed", code: "offer_failed" };
    }
    if (this.closed) return { verdict: "cancelled" };
    let response;
    let body = null;
    try {
      response = await fetch("/echo/offer", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: this.token, sdp: pc.localDescription.sdp, type: "offer" }),
        credentials: "same-origin",
        cache: "no-store",
      });
      body = await response.json().catch(() => null);
    } catch {
      return { verdict: "failed", code: "offline" };
    }
    if (this.closed) return { verdict: "cancelled" };
    if (!response.ok) {
      const code = (body && body.error && body.error.code) || "echo_failed";
      if (code === "echo_busy") return { verdict: "busy", code };
      if (/^(token_|room_)/.test(code)) return { verdict: "token", code };
      return { verdict: "failed", code };
    }
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
    } catch {
      return { verdict: "failed", code: "bad_answer" };
    }

    let pings = 0;
    let stats = { framesDecoded: 0, loss: null };
    let lastStats = 0;
    while (!this.closed) {
      const now = performance.now();
      if (channel.readyState === "open" && pings < MAX_PINGS) {
        sentAt.set(pings, now);
        channel.send(JSON.stringify({ n: pings, t: Math.round(now) }));
        pings += 1;
      }
      if (now - lastStats >= 500) {
        lastStats = now;
        stats = await this.stats();
        this.progress(stats);
      }
      const enough = this.samples.length >= MIN_SAMPLES && (!videoSent || stats.framesDecoded > 0);
      if ((enough && now - started >= MIN_RUN_MS) || now - started >= TIMEOUT_MS) break;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") break;
      await sleep(PING_EVERY_MS);
    }
    if (this.closed) return { verdict: "cancelled" };
    stats = await this.stats();
    this.progress(stats);
    const rttMs = this.samples.length ? Math.round(median(this.samples)) : null;
    const result = {
      connected: channel.readyState === "open" || pc.connectionState === "connected",
      rttMs,
      loss: stats.loss,
      videoSent,
      videoBack: stats.framesDecoded > 0,
    };
    return { ...result, verdict: verdictFor(result), framesDecoded: stats.framesDecoded };
  }

  progress(stats) {
    if (!this.onProgress || this.closed) return;
    this.onProgress({
      rttMs: this.samples.length ? Math.round(median(this.samples)) : null,
      videoBack: stats.framesDecoded > 0,
      connected: this.pc && this.pc.connectionState === "connected",
    });
  }

  /** Frames decoded and packet loss of the returned video (or audio when there is no video). */
  async stats() {
    const out = { framesDecoded: 0, loss: null };
    if (!this.pc) return out;
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return out;
    }
    let received = 0;
    let lost = 0;
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
      received += s.packetsReceived || 0;
      lost += Math.max(0, s.packetsLost || 0);
    });
    if (received + lost > 0) out.loss = lost / (received + lost);
    return out;
  }

  close() {
    this.closed = true;
    if (this.video) this.video.srcObject = null;
    if (this.pc) this.pc.close();
  }
}
