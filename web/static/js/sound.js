// The one way this client makes a sound: a WebAudio context, created or resumed when allowed.
//
// Browsers let a page make sound only after the person clicked or typed on it (or allowed it
// before); callers unlock on such an event and again just before they play.

/** `ctx`, or a new AudioContext, resumed if it was suspended; null where there is none. */
export function unlockAudio(ctx) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return ctx || null;
  if (!ctx) {
    try {
      ctx = new Ctx();
    } catch {
      return null;
    }
  }
  if (ctx.state === "suspended") ctx.resume().catch(() => {});
  return ctx;
}
