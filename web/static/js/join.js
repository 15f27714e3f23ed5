// The citizen join page: check the link, consent to the data notice, camera and microphone,
// the device and network check against the server's echo peer, then hand over to the
// in-room page.
//
// Consent is asked once per invite and notice version: when the check says this invite
// already agreed to the current notice, the page goes straight to camera and microphone
// (with a button to read the notice again); a consent to an older version shows the notice
// again with a line saying it changed. "No" after having agreed withdraws the consent.
//
// The link is /join/{room}#<token>: the token is read from the fragment (never sent in a
// URL), removed from the address bar, and kept in sessionStorage for this tab only, so a
// reload or a language switch (?lang=) still works. A short link /j/K7QM-3XWD-9FHT is
// resolved first (POST /j/resolve → {room, token}); the address bar then shows
// /join/{room}, and everything goes on as for a long link.
//
// Hand-over to /room/{room}: sessionStorage "roomserver.join" holds
//   {room, token, name, audioInput, videoInput, audioOutput}
// (device ids as strings, null when there is none or no choice).

import { initI18n, t } from "./i18n.js";
import {
  LevelMeter,
  MediaError,
  canChooseSpeaker,
  deviceOf,
  fillSelect,
  listDevices,
  mediaSupported,
  openMedia,
  playTestTone,
  stopStream,
} from "./devicecheck.js";
import { EchoCheck, LIMITS } from "./echocheck.js";
import { adviceBox } from "./netadvice.js";

const TOKEN_KEY = "roomserver.jointoken";
const HANDOVER_KEY = "roomserver.join";
const MAX_NAME = 64;
// Control characters, line/paragraph separators, bidi embeddings, overrides and isolates.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

const root = document.getElementById("join");
let room = root.dataset.room; // empty on a short link until it is resolved
const SHORT_PATH = /^\/[jJ]\/([^/?#]+)$/;
const notice = root.dataset.notice;
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  info: null, // the /check answer
  stream: null,
  acquiring: null, // the camera and microphone being opened (the check waits for them)
  meter: new LevelMeter($("level-meter")),
  echo: null,
  screen: "loading",
  busy: false,
};

// ------------------------------------------------------------------ plumbing

function show(name) {
  for (const section of root.querySelectorAll(".screen")) section.hidden = section.id !== `screen-${name}`;
  state.screen = name;
  const heading = $(`screen-${name}`).querySelector("h1");
  if (heading) heading.focus();
}

function say(text) {
  const status = $("join-status");
  if (status.textContent === text && text) status.textContent = "";
  status.textContent = text;
}

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the page still works, a reload needs the link again
  }
}

function readToken() {
  let token = "";
  const hash = location.hash.slice(1);
  if (hash) {
    try {
      token = decodeURIComponent(hash).trim();
    } catch {
      token = hash.trim();
    }
    history.replaceState(null, "", location.pathname + location.search);
    if (token) storage()?.setItem(TOKEN_KEY, JSON.stringify({ room, token }));
  }
  if (!token) {
    try {
      const saved = JSON.parse(storage()?.getItem(TOKEN_KEY) || "null");
      if (saved && saved.room === room && typeof saved.token === "string") token = saved.token;
    } catch {
      /* a broken entry is no token */
    }
  }
  return token || null;
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    return { ok: false, error: { code: "offline" } };
  }
  const data = await response.json().catch(() => null);
  if (response.ok) return { ok: true, data };
  return { ok: false, error: (data && data.error) || { code: response.status >= 500 ? "offline" : "invalid" } };
}

function formatTime(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  try {
    // The Gregorian calendar in every language: the date on the citizen's letter.
    return new Intl.DateTimeFormat(document.documentElement.lang || "de", {
      dateStyle: "full",
      timeStyle: "short",
      calendar: "gregory",
    }).format(date);
  } catch {
    return date.toLocaleString();
  }
}

// ------------------------------------------------------------------ problems

const SCREEN_FOR_CODE = {
  token_expired: "expired",
  token_already_used: "used",
  token_not_yet_valid: "notyet",
  room_ended: "ended",
  token_revoked: "revoked",
  short_link_unknown: "invalid",
  offline: "offline",
  internal_error: "offline",
  rate_limited: "offline",
};

function showProblem(error) {
  const screen = SCREEN_FOR_CODE[error.code] || "invalid";
  if (screen === "notyet") {
    const start = formatTime(error.scheduled_start);
    const from = formatTime(error.not_before);
    $("notyet-start").hidden = !start;
    $("notyet-start").textContent = start ? t("join.notyet.start", { time: start }) : "";
    $("notyet-from").hidden = !from;
    $("notyet-from").textContent = from ? t("join.notyet.from", { time: from }) : "";
  }
  closeEcho();
  releaseMedia();
  say(""); // the heading, focused, says what happened
  show(screen);
}

// ------------------------------------------------------------------ (a) link and notice

async function checkLink() {
  show("loading");
  say(t("join.status.checking"));
  const result = await post(`/join/${encodeURIComponent(room)}/check`, { token: state.token });
  if (!result.ok) return showProblem(result.error);
  state.info = result.data;
  if (!mediaSupported()) return show("unsupported");
  const { title, scheduled_start: start } = state.info.room;
  $("notice-room-title").textContent = title;
  $("notice-room-time").textContent = formatTime(start) ? `– ${formatTime(start)}` : "";
  $("notice-appointment").hidden = false;
  say("");
  const consent = state.info.consent;
  if (consent && consent.current) return startDevices(); // agreed to this very notice already
  $("notice-changed").hidden = !consent; // agreed to an older version: say why it is asked again
  show("notice");
}

async function giveConsent() {
  if (state.busy) return;
  state.busy = true;
  $("consent-yes").disabled = true;
  try {
    const result = await post(`/join/${encodeURIComponent(room)}/consent`, { token: state.token, notice });
    if (!result.ok) {
      if (result.error.code === "unknown_notice") return location.reload(); // a newer notice: show it
      return showProblem(result.error);
    }
    state.info.consent = { notice, given_at: result.data.given_at, current: true };
    $("notice-changed").hidden = true;
    await startDevices();
  } finally {
    state.busy = false;
    $("consent-yes").disabled = false;
  }
}

/** "No": after an earlier "yes" for this invite, that consent is withdrawn on the server. */
async function decline() {
  if (state.busy) return;
  const had = Boolean(state.info && state.info.consent);
  closeEcho();
  releaseMedia();
  if (had) {
    state.busy = true;
    try {
      const result = await post(`/join/${encodeURIComponent(room)}/consent/withdraw`, { token: state.token });
      if (!result.ok) return showProblem(result.error);
      state.info.consent = null;
    } finally {
      state.busy = false;
    }
  }
  $("declined-withdrawn").hidden = !had;
  show("declined");
}

// ------------------------------------------------------------------ (b) devices and name

async function startDevices() {
  const input = $("name-input");
  const citizen = state.info.role === "citizen";
  if (!input.value) input.value = state.info.name || "";
  input.readOnly = !citizen;
  $("name-hint").textContent = citizen ? t("join.devices.name_hint") : t("join.devices.name_fixed");
  show("devices");
  state.acquiring = acquire({});
  await state.acquiring;
}

function releaseMedia() {
  state.meter.detach();
  stopStream(state.stream);
  state.stream = null;
  $("preview").srcObject = null;
}

async function acquire(choice) {
  say(t("join.status.media_starting"));
  releaseMedia(); // free the devices before opening others (some systems allow one user only)
  let stream;
  try {
    stream = await openMedia(choice);
  } catch (err) {
    const kind = err instanceof MediaError ? err.kind : "nodevice";
    say("");
    return show(kind);
  }
  state.stream = stream;
  const hasVideo = stream.getVideoTracks().length > 0;
  const hasAudio = stream.getAudioTracks().length > 0;
  $("preview").srcObject = hasVideo ? stream : null;
  $("preview").hidden = !hasVideo;
  $("no-camera").hidden = hasVideo;
  $("no-microphone").hidden = hasAudio;
  state.meter.attach(stream);
  await refreshDevices();
  // Back from an error screen; but never pull someone who already went on to the check back.
  if (state.screen !== "devices" && state.screen !== "check") show("devices");
  say(t("join.status.media_ready"));
}

async function refreshDevices() {
  const devices = await listDevices();
  fillSelect($("camera-select"), devices.videoinput, deviceOf(state.stream, "video"),
    (n) => t("join.devices.camera_n", { n }), t("join.devices.none_camera"));
  fillSelect($("microphone-select"), devices.audioinput, deviceOf(state.stream, "audio"),
    (n) => t("join.devices.microphone_n", { n }), t("join.devices.none_microphone"));
  const speakers = canChooseSpeaker() ? devices.audiooutput : [];
  const current = $("speaker-select").value || null;
  fillSelect($("speaker-select"), speakers, current, (n) => t("join.devices.speaker_n", { n }),
    t("join.devices.none_speaker"));
  $("speaker-field").hidden = speakers.length === 0;
}

function chosen() {
  return {
    videoId: $("camera-select").value || null,
    audioId: $("microphone-select").value || null,
  };
}

/** The name as the server will take it (trimmed, NFC, 1-64 characters, no controls), or null. */
function cleanName() {
  const name = $("name-input").value.trim().normalize("NFC");
  const ok = name.length > 0 && [...name].length <= MAX_NAME && !FORBIDDEN.test(name);
  $("name-error").hidden = ok;
  $("name-input").setAttribute("aria-invalid", ok ? "false" : "true");
  return ok ? name : null;
}

// ------------------------------------------------------------------ (c) the echo check

function closeEcho() {
  if (state.echo) state.echo.close();
  state.echo = null;
}

function showFigures({ rttMs, videoBack }) {
  const rtt = $("check-rtt");
  if (rttMs !== null && rttMs !== undefined) {
    // Words a citizen understands; the figure stays for support (and the tests) in data-ms.
    const speed = rttMs <= LIMITS.good.rttMs ? "fast" : rttMs <= LIMITS.okay.rttMs ? "ok" : "slow";
    rtt.textContent = t(`join.check.speed.${speed}`);
    rtt.dataset.ms = String(rttMs);
    rtt.dataset.speed = speed;
  }
  const video = $("check-video");
  if (!state.stream || state.stream.getVideoTracks().length === 0) video.textContent = t("join.check.video_none");
  else video.textContent = videoBack ? t("join.check.video_yes") : t("join.check.pending");
}

async function runCheck() {
  closeEcho();
  show("check");
  const rtt = $("check-rtt");
  rtt.textContent = t("join.check.pending");
  delete rtt.dataset.ms;
  $("check-video").textContent = t("join.check.pending");
  const verdictBox = $("check-verdict");
  verdictBox.hidden = true;
  verdictBox.dataset.verdict = "";
  say(t("join.status.check_running"));
  // Someone quicker than her camera: the check needs the picture, so it waits for it.
  if (state.acquiring) await state.acquiring;
  if (state.screen !== "check") return; // the camera failed meanwhile: its screen says what to do

  const echo = new EchoCheck({
    token: state.token,
    iceServers: state.info.ice_servers,
    stream: state.stream,
    video: $("echo-video"),
    onProgress: (p) => state.echo === echo && showFigures(p),
  });
  state.echo = echo;
  const result = await echo.run();
  if (state.echo !== echo || result.verdict === "cancelled") return;
  if (result.verdict === "token") return showProblem({ code: result.code });
  showFigures({ rttMs: result.rttMs, videoBack: result.videoBack });
  const hasVideo = state.stream && state.stream.getVideoTracks().length > 0;
  $("check-video").textContent = !hasVideo ? t("join.check.video_none")
    : result.videoBack ? t("join.check.video_yes") : t("join.check.video_no");
  const verdict = result.verdict; // good | okay | poor | failed | busy
  const title = t(`join.check.${verdict}.title`);
  $("verdict-title").textContent = title;
  $("verdict-advice").textContent = t(`join.check.${verdict}.advice`);
  document.getElementById("network-advice")?.remove();
  if (verdict === "failed" && result.code === undefined) $("verdict-advice").after(adviceBox(state.info.ice_servers));
  verdictBox.dataset.verdict = verdict;
  verdictBox.hidden = false;
  say(t("join.status.check_done", { verdict: title }));
}

// ------------------------------------------------------------------ (d) hand-over

function join() {
  const name = cleanName();
  if (!name) {
    closeEcho();
    show("devices");
    $("name-input").focus();
    return;
  }
  const speaker = $("speaker-field").hidden ? null : $("speaker-select").value || null;
  const handover = {
    room,
    token: state.token,
    name,
    audioInput: deviceOf(state.stream, "audio") || $("microphone-select").value || null,
    videoInput: deviceOf(state.stream, "video") || $("camera-select").value || null,
    audioOutput: speaker,
  };
  try {
    sessionStorage.setItem(HANDOVER_KEY, JSON.stringify(handover));
  } catch {
    /* without storage the room page falls back to asking for the link again */
  }
  say(t("join.status.joining"));
  closeEcho();
  releaseMedia();
  state.meter.close();
  location.assign(`/room/${encodeURIComponent(room)}`);
}

// ------------------------------------------------------------------ wiring

function wire() {
  $("consent-yes").addEventListener("click", giveConsent);
  $("consent-no").addEventListener("click", decline);
  $("declined-back").addEventListener("click", () => show("notice"));
  $("reread-notice").addEventListener("click", () => show("notice"));
  $("camera-select").addEventListener("change", () => acquire(chosen()));
  $("microphone-select").addEventListener("change", () => acquire(chosen()));
  $("speaker-test").addEventListener("click", async () => {
    say(t("join.status.speaker_playing"));
    $("speaker-test").disabled = true;
    try {
      await playTestTone($("speaker-select").value || null);
    } catch {
      /* a speaker that cannot play: nothing more to say than silence */
    } finally {
      $("speaker-test").disabled = false;
    }
  });
  $("devices-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!cleanName()) {
      $("name-input").focus();
      return;
    }
    runCheck();
  });
  $("name-input").addEventListener("input", () => {
    if (!$("name-error").hidden) cleanName();
  });
  $("check-retry").addEventListener("click", runCheck);
  $("check-back").addEventListener("click", () => {
    closeEcho();
    show("devices");
  });
  $("join-button").addEventListener("click", join);
  for (const button of root.querySelectorAll(".retry-media")) {
    button.addEventListener("click", () => {
      show("devices");
      state.acquiring = acquire({});
    });
  }
  for (const button of root.querySelectorAll(".recheck")) button.addEventListener("click", checkLink);
  if (navigator.mediaDevices && "ondevicechange" in navigator.mediaDevices) {
    navigator.mediaDevices.addEventListener("devicechange", () => {
      if (state.stream) refreshDevices();
    });
  }
  window.addEventListener("pagehide", () => {
    closeEcho();
    releaseMedia();
  });
}

/** A short link: ask which invite the code stands for; then the address bar shows /join/{room}. */
async function resolveShort(code) {
  const result = await post("/j/resolve", { code });
  if (!result.ok) {
    showProblem(result.error);
    return false;
  }
  room = result.data.room;
  root.dataset.room = room;
  history.replaceState(null, "", `/join/${encodeURIComponent(room)}${location.search}`);
  storage()?.setItem(TOKEN_KEY, JSON.stringify({ room, token: result.data.token }));
  return true;
}

async function main() {
  await initI18n();
  wire();
  const short = SHORT_PATH.exec(location.pathname);
  if (short) {
    show("loading");
    say(t("join.status.checking"));
    let code = short[1];
    try {
      code = decodeURIComponent(code);
    } catch {
      /* sent as typed */
    }
    if (!(await resolveShort(code))) return;
  }
  state.token = readToken();
  if (!state.token) return show("invalid");
  await checkLink();
}

main();
