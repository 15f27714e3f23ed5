// How a sender adapts its video to the link: pure rules, no DOM, no WebRTC, no clock.
//
// quality.js reads getStats() every few seconds per connection and hands this module one
// sample ({loss, rttMs}: the fraction of our packets the peer reported lost in the last
// interval, and the round trip). `decide` returns the next state: the video level to send
// (a step down the ladder after bad samples, a step back up after good ones, with
// hysteresis so a link does not flap), whether to offer audio only (the lowest level is
// still too much), and the indicator to show for the person ("good", "weak").
//
// Everything here is a plain function of its inputs, so it is unit-tested with node.

/** The video ladder: resolution divided by `scale`, bitrate capped at `maxKbps` (null: the browser's own). */
export const LEVELS = Object.freeze([
  Object.freeze({ scale: 1, maxKbps: null }),
  Object.freeze({ scale: 1.5, maxKbps: 500 }),
  Object.freeze({ scale: 2, maxKbps: 250 }),
  Object.freeze({ scale: 3, maxKbps: 120 }),
  Object.freeze({ scale: 4, maxKbps: 60 }),
]);

export const THRESHOLDS = Object.freeze({
  lossBad: 0.05, // 5 % of packets lost: the picture breaks up
  rttBad: 400, // ms: conversation starts to stumble
  lossGood: 0.02,
  rttGood: 250,
  downAfter: 2, // bad samples in a row before a step down
  upAfter: 3, // good samples in a row before a step up (slower up than down)
  audioOnlyAfter: 3, // bad samples in a row at the lowest level before audio only is offered
  weakAfter: 2, // bad samples in a row before the indicator says "weak"
});

/** The state of one connection before any sample. */
export function initialState() {
  return { level: 0, badRun: 0, goodRun: 0, lowestBadRun: 0, indicator: "good", offerAudioOnly: false };
}

function known(value) {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/** "bad", "good", "fair" (in between: hold) or "unknown" (no figure at all) for one sample. */
export function verdict(sample, t = THRESHOLDS) {
  const loss = sample && known(sample.loss) ? sample.loss : null;
  const rtt = sample && known(sample.rttMs) ? sample.rttMs : null;
  if (loss === null && rtt === null) return "unknown";
  if ((loss !== null && loss >= t.lossBad) || (rtt !== null && rtt >= t.rttBad)) return "bad";
  if ((loss === null || loss < t.lossGood) && (rtt === null || rtt < t.rttGood)) return "good";
  return "fair";
}

/**
 * The next state of one connection after `sample`.
 * @param {ReturnType<typeof initialState>} state
 * @param {{loss?: number, rttMs?: number}} sample
 * @returns {ReturnType<typeof initialState> & {changed: boolean}}
 */
export function decide(state, sample, t = THRESHOLDS) {
  const top = LEVELS.length - 1;
  const next = { ...initialState(), ...state, changed: false };
  const v = verdict(sample, t);
  if (v === "unknown") return next;
  if (v === "bad") {
    next.badRun += 1;
    next.goodRun = 0;
    if (next.level === top) next.lowestBadRun += 1;
    if (next.badRun >= t.downAfter && next.level < top) {
      next.level += 1;
      next.badRun = 0;
      next.changed = true;
    }
  } else if (v === "good") {
    next.goodRun += 1;
    next.badRun = 0;
    next.lowestBadRun = 0;
    if (next.goodRun >= t.upAfter && next.level > 0) {
      next.level -= 1;
      next.goodRun = 0;
      next.changed = true;
    }
  } else {
    next.goodRun = 0; // fair: hold the level, neither run goes on
    next.badRun = 0;
    next.lowestBadRun = 0;
  }
  next.offerAudioOnly = next.level === top && next.lowestBadRun >= t.audioOnlyAfter;
  // The indicator: weak while bad samples keep coming or the link sits low on the ladder.
  if (v === "bad" && (next.badRun >= t.weakAfter || next.level > 0)) next.indicator = "weak";
  else if (v === "good" && next.level <= 1) next.indicator = "good";
  return next;
}

/** The encoding parameters of a level, as RTCRtpSender.setParameters takes them. */
export function encodingFor(level) {
  const step = LEVELS[Math.max(0, Math.min(LEVELS.length - 1, level | 0))];
  return { scaleResolutionDownBy: step.scale, maxBitrate: step.maxKbps === null ? null : step.maxKbps * 1000 };
}
