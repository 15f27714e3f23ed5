// Who is speaking: the loudest peer, from the audio levels the browser reports for what it receives.
//
// Reads RTCRtpReceiver.getSynchronizationSources() (no audio graph, no user gesture needed)
// a few times a second. Pure choice in `chooseSpeaker`: a peer becomes the speaker after being
// the loudest, above a floor, for a moment; the current speaker keeps the place unless someone
// is clearly louder, so the large picture does not flicker between two voices.

const INTERVAL_MS = 300;
const FLOOR = 0.02; // audioLevel 0..1; below this is silence or a hum
const SWITCH_FACTOR = 1.6; // how much louder a newcomer must be than the current speaker
const HOLD_TICKS = 3; // how long (in readings) the newcomer must lead

/** Pure: the next speaker from the smoothed levels {id: level}, the current one and its challenger. */
export function chooseSpeaker(levels, current, challenger = { id: null, ticks: 0 }) {
  let loudest = null;
  for (const [id, level] of Object.entries(levels)) {
    if (level >= FLOOR && (loudest === null || level > levels[loudest])) loudest = id;
  }
  if (loudest === null || loudest === current) return { speaker: current, challenger: { id: null, ticks: 0 } };
  const currentLevel = current && current in levels ? levels[current] : 0;
  if (currentLevel >= FLOOR && levels[loudest] < currentLevel * SWITCH_FACTOR) {
    return { speaker: current, challenger: { id: null, ticks: 0 } };
  }
  const ticks = challenger.id === loudest ? challenger.ticks + 1 : 1;
  if (ticks >= HOLD_TICKS || current === null || !(current in levels)) {
    return { speaker: loudest, challenger: { id: null, ticks: 0 } };
  }
  return { speaker: current, challenger: { id: loudest, ticks } };
}

export class SpeakerWatch extends EventTarget {
  /** @param {() => Map<string, RTCPeerConnection|null>} connections  the peer connections now */
  constructor(connections) {
    super();
    this.connections = connections;
    this.levels = {};
    this.speaker = null;
    this.challenger = { id: null, ticks: 0 };
    this.timer = setInterval(() => this.read(), INTERVAL_MS);
  }

  read() {
    const next = {};
    for (const [id, pc] of this.connections()) {
      let level = 0;
      for (const receiver of pc?.getReceivers?.() || []) {
        if (receiver.track?.kind !== "audio") continue;
        for (const source of receiver.getSynchronizationSources?.() || []) level = Math.max(level, source.audioLevel || 0);
      }
      next[id] = 0.5 * (this.levels[id] || 0) + 0.5 * level; // smoothed
    }
    this.levels = next;
    const { speaker, challenger } = chooseSpeaker(next, this.speaker, this.challenger);
    this.challenger = challenger;
    if (speaker !== this.speaker) {
      this.speaker = speaker;
      this.dispatchEvent(new CustomEvent("speaker", { detail: { id: speaker } }));
    }
  }

  stop() {
    clearInterval(this.timer);
  }
}
