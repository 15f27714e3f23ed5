// A knock on the door: two short, low taps when someone arrives in the waiting room.
//
// WebAudio (sound.js), no audio file. The first click or key on the page unlocks it; a knock
// that cannot sound is still seen (the badge) and read out (the live region).

import { unlockAudio } from "./sound.js";

export class Knocker {
  constructor() {
    this.ctx = null;
    this.knocks = 0; // knocks that sounded (tests and diagnostics)
    const unlock = () => this.unlock();
    document.addEventListener("pointerdown", unlock, { once: true, capture: true });
    document.addEventListener("keydown", unlock, { once: true, capture: true });
  }

  unlock() {
    this.ctx = unlockAudio(this.ctx);
  }

  tap(at) {
    const osc = this.ctx.createOscillator();
    const gain = this.ctx.createGain();
    osc.type = "triangle";
    osc.frequency.setValueAtTime(220, at);
    osc.frequency.exponentialRampToValueAtTime(110, at + 0.12);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.5, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.15);
    osc.connect(gain).connect(this.ctx.destination);
    osc.start(at);
    osc.stop(at + 0.2);
  }

  knock() {
    this.unlock();
    if (!this.ctx || this.ctx.state !== "running") return false;
    const now = this.ctx.currentTime + 0.02;
    this.tap(now);
    this.tap(now + 0.22);
    this.knocks += 1;
    return true;
  }
}
