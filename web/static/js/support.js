// What this browser can do, feature by feature. docs/browsers.md lists the supported
// browsers and versions and what each gets; every API outside Safari on iOS 16 that the
// client uses is named here (or feature-tested where it is used) — tests/pages/test_browser_support.py
// scans the client code for any that is not.
//
// A browser without WebRTC gets a clear page instead of a broken call.

/** The features of `win` (a window), each true or false. */
export function features(win = window) {
  const nav = win.navigator || {};
  const devices = nav.mediaDevices;
  const media = win.HTMLMediaElement && win.HTMLMediaElement.prototype;
  const sender = win.RTCRtpSender && win.RTCRtpSender.prototype;
  return {
    // The call itself: a peer connection, camera and microphone, a signalling socket.
    call: typeof win.RTCPeerConnection === "function" && Boolean(devices)
      && typeof devices.getUserMedia === "function" && typeof win.WebSocket === "function",
    // Screen sharing: desktop browsers; no phone browser offers it.
    screenShare: Boolean(devices) && typeof devices.getDisplayMedia === "function",
    // Choosing the speaker: Chromium and Firefox; not Safari.
    audioOutput: Boolean(media) && "setSinkId" in media,
    // Lowering what we send on a poor link (quality.js).
    senderParameters: Boolean(sender) && typeof sender.setParameters === "function",
  };
}
