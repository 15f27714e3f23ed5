// The own camera and microphone in the room, and what this device can share.
//
// Tries the devices chosen on the join page first, then any camera and microphone, then one
// of them alone: a consultation goes on with sound only, or with picture only.

export class LocalMedia {
  constructor(prefs) {
    this.stream = null;
    this.camera = null;
    this.mic = null;
    this.screen = null;
    this.problem = null;
    this.ready = this.acquire(prefs).catch((error) => {
      this.problem = error && error.name;
    });
  }

  async acquire({ audioInput, videoInput }) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.problem = "unsupported";
      return;
    }
    const video = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
    const attempts = [
      { audio: audioInput ? { deviceId: { exact: audioInput } } : true,
        video: videoInput ? { ...video, deviceId: { exact: videoInput } } : video },
      { audio: true, video },
      { audio: true, video: false },
      { audio: false, video },
    ];
    let lastError = null;
    for (const constraints of attempts) {
      try {
        this.stream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (error) {
        lastError = error;
        if (error && error.name === "NotAllowedError") break; // asking again changes nothing
      }
    }
    if (!this.stream) {
      this.problem = (lastError && lastError.name) || "NotFoundError";
      this.stream = new MediaStream();
      return;
    }
    this.mic = this.stream.getAudioTracks()[0] || null;
    this.camera = this.stream.getVideoTracks()[0] || null;
    if (!this.mic || !this.camera) this.problem = "partial";
  }

  track(kind) {
    return kind === "audio" ? this.mic : (this.screen || this.camera);
  }

  stop() {
    for (const track of [this.mic, this.camera, this.screen]) if (track) track.stop();
  }
}

/** Whether to offer screen sharing: the browser can, and this is not a phone or tablet (they cannot). */
export function canShareScreen() {
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== "function") return false;
  if (navigator.userAgentData && navigator.userAgentData.mobile) return false;
  const touchOnly = window.matchMedia("(pointer: coarse)").matches && !window.matchMedia("(any-pointer: fine)").matches;
  return !touchOnly;
}
