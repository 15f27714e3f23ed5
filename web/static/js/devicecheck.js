// Camera, microphone and speaker for the join page: open them, list them, show the
// microphone level, play a test sound. No network here; the echo check is echocheck.js.

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } };

/** Why media could not be opened: "permission", "nodevice", "inuse" or "unsupported". */
export class MediaError extends Error {
  constructor(kind, cause) {
    super(kind);
    this.kind = kind;
    this.cause = cause;
  }
}

/** The kind of a getUserMedia failure, by the DOMException name browsers use. */
export function classify(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return "permission";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "inuse";
    default: // NotFoundError, OverconstrainedError, DevicesNotFoundError, anything unknown
      return "nodevice";
  }
}

export function mediaSupported() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.RTCPeerConnection);
}

/**
 * A stream with camera and microphone, or with whichever of the two exists.
 * `videoId`/`audioId` pick a device; a missing picked device falls back to the default.
 */
export async function openMedia({ videoId = null, audioId = null } = {}) {
  if (!mediaSupported()) throw new MediaError("unsupported");
  const video = videoId ? { ...VIDEO, deviceId: { exact: videoId } } : VIDEO;
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  const gum = (constraints) => navigator.mediaDevices.getUserMedia(constraints);
  let first;
  try {
    return await gum({ video, audio });
  } catch (err) {
    first = err;
  }
  if (classify(first) === "permission") throw new MediaError("permission", first);
  if ((videoId || audioId) && first && first.name === "OverconstrainedError") {
    return openMedia({}); // the chosen device is gone: take the defaults
  }
  // Maybe only one of the two exists (no camera, or no microphone): take what there is.
  for (const constraints of [{ audio }, { video }]) {
    try {
      return await gum(constraints);
    } catch (err) {
      if (classify(err) === "permission") throw new MediaError("permission", err);
    }
  }
  throw new MediaError(classify(first), first);
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/** The device id a stream's track of `kind` uses, or null. */
export function deviceOf(stream, kind) {
  const track = stream && (kind === "video" ? stream.getVideoTracks() : stream.getAudioTracks())[0];
  if (!track) return null;
  const settings = track.getSettings ? track.getSettings() : {};
  return settings.deviceId || null;
}

/** The devices by kind: {videoinput: [...], audioinput: [...], audiooutput: [...]}. */
export async function listDevices() {
  const lists = { videoinput: [], audioinput: [], audiooutput: [] };
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return lists;
  let all = [];
  try {
    all = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return lists;
  }
  for (const device of all) {
    if (lists[device.kind] && device.deviceId) lists[device.kind].push(device);
  }
  return lists;
}

/**
 * Fill a <select> with devices; `unnamed(n)` labels a device without a label,
 * `none` is the text when there is no device at all (the select is then disabled).
 */
export function fillSelect(select, devices, selectedId, unnamed, none) {
  select.replaceChildren();
  devices.forEach((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || unnamed(index + 1);
    option.selected = device.deviceId === selectedId;
    select.append(option);
  });
  if (!devices.length) {
    const option = document.createElement("option");
    option.value = "";
    option.textContent = none;
    select.append(option);
  }
  select.disabled = devices.length === 0;
}

/** Whether this browser can send sound to a chosen speaker. */
export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

/** A one-second quiet tone on the chosen speaker. */
export async function playTestTone(sinkId) {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  const dest = ctx.createMediaStreamDestination();
  osc.frequency.value = 440;
  gain.gain.value = 0.15;
  osc.connect(gain).connect(dest);
  const audio = new Audio();
  audio.srcObject = dest.stream;
  try {
    if (sinkId && audio.setSinkId) await audio.setSinkId(sinkId);
    await audio.play();
    osc.start();
    osc.stop(ctx.currentTime + 1);
    await new Promise((resolve) => setTimeout(resolve, 1100));
  } finally {
    audio.pause();
    audio.srcObject = null;
    await ctx.close().catch(() => {});
  }
}

/** The microphone level on a <meter> (0..1, logarithmic: -60 dB to 0 dB), ten times a second. */
export class LevelMeter {
  constructor(meter) {
    this.meter = meter;
    this.ctx = null;
    this.source = null;
    this.timer = null;
    this.peak = 0;
  }

  attach(stream) {
    this.detach();
    const track = stream && stream.getAudioTracks()[0];
    if (!track) return;
    if (!this.ctx) this.ctx = new AudioContext();
    this.ctx.resume().catch(() => {});
    this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 1024;
    this.source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      const db = rms > 0 ? 20 * Math.log10(rms) : -100;
      const level = Math.min(1, Math.max(0, (db + 60) / 60));
      this.meter.value = level;
      this.peak = Math.max(this.peak, level);
      this.meter.dataset.peak = this.peak.toFixed(3);
    }, 100);
  }

  detach() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.source) this.source.disconnect();
    this.source = null;
    this.meter.value = 0;
  }

  close() {
    this.detach();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}
