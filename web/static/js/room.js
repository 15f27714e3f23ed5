// Entry module of the in-room page, /room/{room_id} (every role).
//
// ENTRY CONTRACT (other pages depend on it):
//   * Token from the URL fragment: /room/{room}#<jwt> (direct links, e.g. for experts).
//     The fragment is removed from the address bar at once (history.replaceState) and
//     never reaches the server.
//   * Or from sessionStorage "roomserver.join" = JSON
//       {"room": "<room id>", "token": "<jwt>", "name": "<typed name or null>",
//        "audioInput": "<deviceId|null>", "videoInput": "<deviceId|null>",
//        "audioOutput": "<deviceId|null>"}
//     put there by the citizen join page or the counsellor console before navigating.
//     An entry for another room is ignored. A fragment token is stored the same way
//     (keeping the device choices of an entry for the same room) so a reload still works.
//   * The page sends `join` {token, room: <page's room id>, name} as the first WebSocket
//     message. After `welcome`/`waiting` it keeps the resume secret in
//     sessionStorage "roomserver.resume.<room>", so a reload within the grace period
//     resumes the same seat instead of joining; when the secret no longer works it joins
//     again with the stored token. The secret is deleted when the person leaves, is
//     removed or denied, or the room ends. A fragment token that differs from the stored
//     one starts a new join (the stored secret belonged to someone else's link).
//   * Staff pages may carry <meta name="csrf-token">; in the counsellor's view the module
//     ./invite.js (mountInvitePanel(container, roomId)) is imported dynamically and
//     mounted into the side panel when it exists; likewise ./callpanel.js
//     (mountCallPanel(container, signallingClient)), which hides itself without a session.
//
// DEBUG HANDLE: window.roomserverDebug (read-only views of this page's own objects, for
// the Chromium tests and for support: state, seat id, connections, received-video
// figures, and drop() to simulate a network drop). It holds nothing that is not already
// reachable by this page's own scripts (the CSP admits no other script), and no token.

import { initI18n, t } from "./i18n.js";
import { SignallingClient, signallingUrl } from "./signalling.js";
import { Mesh } from "./mesh.js";
import { Chat } from "./chat.js";
import { RoomView, roleLabel } from "./roomview.js";

const JOIN_KEY = "roomserver.join";
const RESUME_PREFIX = "roomserver.resume.";

// -- the token leaves the address bar before anything else happens ------------------

const roomId = document.body.dataset.room || "";
let fragmentToken = null;
if (window.location.hash.length > 1) {
  try {
    fragmentToken = decodeURIComponent(window.location.hash.slice(1)).trim() || null;
  } catch {
    fragmentToken = window.location.hash.slice(1);
  }
  window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search);
}

function storageGet(key) {
  try {
    return window.sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function storageSet(key, value) {
  try {
    if (value === null || value === undefined) window.sessionStorage.removeItem(key);
    else window.sessionStorage.setItem(key, value);
  } catch {
    /* storage unavailable: reloads then join again */
  }
}

function readEntry() {
  try {
    const entry = JSON.parse(storageGet(JOIN_KEY) || "null");
    if (entry && typeof entry === "object" && entry.room === roomId) return entry;
  } catch {
    /* not ours */
  }
  return null;
}

function entryFor() {
  const stored = readEntry();
  const resumeKey = RESUME_PREFIX + roomId;
  if (fragmentToken) {
    if (!stored || stored.token !== fragmentToken) storageSet(resumeKey, null);
    const entry = {
      room: roomId, token: fragmentToken, name: null,
      audioInput: stored?.audioInput ?? null, videoInput: stored?.videoInput ?? null,
      audioOutput: stored?.audioOutput ?? null,
    };
    if (stored && stored.token === fragmentToken) entry.name = stored.name ?? null;
    storageSet(JOIN_KEY, JSON.stringify(entry));
    return entry;
  }
  return stored || { room: roomId, token: null, name: null, audioInput: null, videoInput: null, audioOutput: null };
}

// -- local camera and microphone --------------------------------------------------------

class LocalMedia {
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

// -- the page ------------------------------------------------------------------------------

async function main() {
  await initI18n();
  const view = new RoomView();
  const entry = entryFor();
  const resumeKey = RESUME_PREFIX + roomId;
  const secret = storageGet(resumeKey);

  if (!roomId || (!entry.token && !secret)) {
    view.showEnd("error", "no_token");
    return;
  }

  const media = new LocalMedia(entry);
  view.setAudioOutput(entry.audioOutput);

  const app = {
    self: null,
    room: null,
    peers: new Map(),
    lobby: [],
    mine: { mic: true, camera: true, screen: false, hand: false },
    inCall: false,
    moderationReady: false,
  };

  const signalling = new SignallingClient({
    url: signallingUrl(), token: entry.token, secret, name: entry.name, room: roomId,
    onSecret: (value) => storageSet(resumeKey, value),
  });
  const mesh = new Mesh({ send: (m) => signalling.send(m), media });
  const chat = new Chat();

  const person = (id) => app.peers.get(id);
  const nameOf = (id) => person(id)?.name || t("room.someone");
  const selfPerson = () => app.self && { id: app.self.id, name: app.self.name, role: app.self.role, state: app.mine };

  // -- rendering helpers --------------------------------------------------------------

  function renderSelfTile() {
    const me = selfPerson();
    if (!me) return;
    view.upsertTile(me, { self: true });
    const video = media.track("video");
    view.setStream(me.id, video ? new MediaStream([video]) : null);
  }

  function renderPeople() {
    if (app.self?.role !== "counsellor") return;
    view.renderPeople(selfPerson(), [...app.peers.values()], { onRemove: removePeer });
  }

  function renderLobby() {
    if (app.self?.role !== "counsellor") return;
    view.renderLobby(app.lobby, {
      onAdmit: (w) => signalling.send({ type: "admit", peer: w.id }),
      onDeny: (w) => signalling.send({ type: "deny", peer: w.id }),
    });
  }

  function event(text) {
    view.appendChat({ notice: true, text });
  }

  // -- moderation ----------------------------------------------------------------------

  async function removePeer(peer) {
    const ok = await view.confirm({
      title: t("room.confirm.remove.title", { name: peer.name }),
      text: t("room.confirm.remove.text", { name: peer.name }),
      ok: t("room.confirm.remove.ok"),
    });
    if (ok) signalling.send({ type: "remove", peer: peer.id });
  }

  async function endRoom() {
    const ok = await view.confirm({
      title: t("room.confirm.end.title"), text: t("room.confirm.end.text"), ok: t("room.confirm.end.ok"),
    });
    if (ok) signalling.send({ type: "end" });
  }

  function setUpModeration() {
    if (app.moderationReady || app.self?.role !== "counsellor") return;
    app.moderationReady = true;
    view.showModeration(true);
    view.onControl("end", endRoom);
    import("./invite.js")
      .then((mod) => {
        if (typeof mod.mountInvitePanel === "function") view.mountInvite((container) => mod.mountInvitePanel(container, roomId));
      })
      .catch(() => { /* no invite panel on this installation */ });
    // The call panel (callpanel.js) talks through this page's signalling client (send + "message" events).
    import("./callpanel.js")
      .then((mod) => {
        const box = document.createElement("div");
        box.id = "call-panel";
        box.hidden = true;
        document.getElementById("invite-panel")?.before(box);
        if (box.isConnected) return mod.mountCallPanel(box, signalling);
        return null;
      })
      .catch(() => { /* no call panel on this installation */ });
  }

  // -- own media state ----------------------------------------------------------------

  function sendState(fields) {
    signalling.send({ type: "state", ...fields });
  }

  function applyMine() {
    if (media.mic) media.mic.enabled = app.mine.mic;
    if (media.camera) media.camera.enabled = app.mine.camera;
    view.setToggle("mic", !app.mine.mic);
    view.setToggle("camera", !app.mine.camera);
    view.setToggle("screen", app.mine.screen);
    view.setToggle("hand", app.mine.hand);
    if (app.self) view.upsertTile(selfPerson(), { self: true });
  }

  /** After welcome/waiting: tell the server what differs from the state it has for us. */
  function syncState(serverState) {
    const diff = {};
    for (const key of ["mic", "camera", "screen", "hand"]) {
      if (serverState && serverState[key] !== app.mine[key]) diff[key] = app.mine[key];
    }
    if (!serverState) Object.assign(diff, app.mine);
    if (Object.keys(diff).length) sendState(diff);
  }

  async function toggleScreen() {
    if (app.mine.screen) {
      stopScreen();
      return;
    }
    if (!navigator.mediaDevices?.getDisplayMedia) {
      view.mediaProblem(t("room.media.screen_unsupported"));
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (error) {
      if (error && error.name !== "NotAllowedError") view.mediaProblem(t("room.media.screen_failed"));
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    media.screen = track;
    track.addEventListener("ended", () => { if (media.screen === track) stopScreen(); });
    await mesh.replaceTrack("video", track);
    app.mine.screen = true;
    applyMine();
    renderSelfTile();
    sendState({ screen: true });
    view.announce(t("room.announce.screen_on"));
  }

  function stopScreen() {
    const track = media.screen;
    media.screen = null;
    if (track) track.stop();
    mesh.replaceTrack("video", media.camera);
    app.mine.screen = false;
    applyMine();
    renderSelfTile();
    sendState({ screen: false });
    view.announce(t("room.announce.screen_off"));
  }

  view.onControl("mic", () => {
    if (!media.mic) return;
    app.mine.mic = !app.mine.mic;
    applyMine();
    sendState({ mic: app.mine.mic });
    view.announce(t(app.mine.mic ? "room.announce.mic_on" : "room.announce.mic_off"));
  });
  view.onControl("camera", () => {
    if (!media.camera) return;
    app.mine.camera = !app.mine.camera;
    applyMine();
    sendState({ camera: app.mine.camera });
    view.announce(t(app.mine.camera ? "room.announce.camera_on" : "room.announce.camera_off"));
  });
  view.onControl("screen", toggleScreen);
  view.onControl("hand", () => {
    app.mine.hand = !app.mine.hand;
    applyMine();
    sendState({ hand: app.mine.hand });
    view.announce(t(app.mine.hand ? "room.announce.hand_on" : "room.announce.hand_off"));
  });
  view.onControl("leave", () => signalling.leave());
  document.getElementById("waiting-leave")?.addEventListener("click", () => signalling.leave());

  // -- chat --------------------------------------------------------------------------

  view.onChatSubmit((text) => {
    const sent = chat.send(text);
    if (!sent) {
      event(t("room.chat.not_sent"));
      return false;
    }
    view.appendChat({ own: true, text });
    return true;
  });
  chat.addEventListener("message", (e) => view.appendChat({ from: nameOf(e.detail.peerId), text: e.detail.text }));
  chat.addEventListener("change", (e) => view.setChatReach(e.detail.open));
  view.setChatReach(0);

  // -- mesh --------------------------------------------------------------------------

  mesh.addEventListener("track", (e) => view.setStream(e.detail.peerId, e.detail.stream));
  mesh.addEventListener("connection", (e) => view.setRtcState(e.detail.peerId, e.detail.state));
  mesh.addEventListener("channel", (e) => chat.attach(e.detail.peerId, e.detail.channel));
  mesh.addEventListener("link-closed", (e) => {
    chat.detach(e.detail.peerId);
    view.setRtcState(e.detail.peerId, "new");
  });

  // -- signalling ----------------------------------------------------------------------

  function addPeer(peer) {
    const known = { id: peer.id, name: peer.name, role: peer.role, connection: peer.connection || "online",
      state: { mic: true, camera: true, screen: false, hand: false, ...(peer.state || {}) } };
    app.peers.set(peer.id, known);
    view.upsertTile(known);
    return known;
  }

  const handlers = {
    welcome(m) {
      const resumed = Boolean(m.resumed);
      const wasInCall = app.inCall;
      app.self = { ...m.self };
      app.room = m.room || {};
      view.setRoomTitle(app.room.title);
      // The peer list of the welcome is the truth now.
      const listed = new Set((m.peers || []).map((p) => p.id));
      for (const id of [...app.peers.keys()]) {
        if (!listed.has(id)) {
          app.peers.delete(id);
          view.removeTile(id);
        }
      }
      for (const peer of m.peers || []) addPeer(peer);
      for (const [id, tile] of view.tiles) if (tile.self && id !== app.self.id) view.removeTile(id);
      renderSelfTile();
      mesh.welcome(m);
      app.inCall = true;
      view.setState("in-call");
      view.status("");
      view.showScreen("call", { focus: !wasInCall });
      setUpModeration();
      renderPeople();
      renderLobby();
      applyMine();
      syncState(m.self.state);
      if (resumed) {
        view.announce(t("room.state.reconnected"));
      } else if (!wasInCall) {
        view.announce(app.peers.size ? t("room.announce.entered_with", { count: app.peers.size }) : t("room.announce.entered_alone"));
        event(t("room.event.entered"));
      }
    },
    waiting(m) {
      app.self = { ...m.self };
      app.room = m.room || {};
      view.setRoomTitle(app.room.title);
      view.setState("waiting");
      view.status("");
      const preview = document.getElementById("waiting-preview");
      if (preview && media.camera && preview.srcObject == null) {
        preview.srcObject = new MediaStream([media.camera]);
        preview.play().catch(() => {});
      }
      view.showScreen("waiting", { focus: !app.waitingShown });
      if (!app.waitingShown) view.announce(t("room.waiting.title"));
      app.waitingShown = true;
      syncState(m.self.state || null);
    },
    lobby(m) {
      const before = new Set(app.lobby.map((w) => w.id));
      app.lobby = Array.isArray(m.waiting) ? m.waiting : [];
      renderLobby();
      for (const w of app.lobby) {
        if (!before.has(w.id)) event(t("room.event.waiting", { name: w.name, role: roleLabel(w.role) }));
      }
    },
    "peer-joined"(m) {
      const peer = addPeer(m.peer);
      mesh.peerJoined(peer.id);
      renderPeople();
      event(t("room.event.joined", { name: peer.name, role: roleLabel(peer.role) }));
    },
    "peer-left"(m) {
      const name = nameOf(m.peer);
      app.peers.delete(m.peer);
      mesh.peerLeft(m.peer);
      view.removeTile(m.peer);
      renderPeople();
      const reason = ["left", "removed", "timeout", "ended"].includes(m.reason) ? m.reason : "left";
      event(t(`room.event.left_${reason}`, { name }));
    },
    "peer-reconnecting"(m) {
      const peer = person(m.peer);
      if (!peer) return;
      peer.connection = "reconnecting";
      view.upsertTile(peer);
      event(t("room.event.reconnecting", { name: peer.name }));
    },
    "peer-resumed"(m) {
      const peer = person(m.peer);
      if (!peer) return;
      peer.connection = "online";
      mesh.peerResumed(peer.id);
      view.upsertTile(peer);
      event(t("room.event.resumed", { name: peer.name }));
    },
    "peer-state"(m) {
      const peer = person(m.peer);
      if (!peer) return;
      const hadHand = peer.state.hand;
      peer.state = { ...peer.state, ...(m.state || {}) };
      view.upsertTile(peer);
      if (peer.state.hand && !hadHand) event(t("room.event.hand", { name: peer.name }));
    },
    signal(m) {
      mesh.signal(m);
    },
    error(m) {
      if (["admit", "deny", "remove", "end"].includes(m.ref)) {
        const key = `room.action_error.${m.code}`;
        const text = t(key);
        event(text === key ? t("room.action_error.other") : text);
        renderLobby();
      }
    },
  };

  signalling.addEventListener("message", (e) => {
    const handler = handlers[e.detail.type];
    if (handler) {
      try {
        handler(e.detail);
      } catch (error) {
        console.error("cannot handle", e.detail.type, error);
      }
    }
  });

  signalling.addEventListener("status", (e) => {
    const status = e.detail.status;
    if (status === "reconnecting") {
      view.setState("reconnecting");
      view.status(t("room.state.reconnecting"), "warning"); // a polite status region: read out once
    } else if (status === "connecting" && !app.self) {
      view.status("");
    }
  });

  signalling.addEventListener("final", (e) => {
    const { reason, code } = e.detail;
    mesh.close();
    media.stop();
    if (reason === "error" && code === "room_ended") {
      view.showEnd("error", "room_ended");
    } else if (reason === "error") {
      view.showEnd("error", code);
    } else {
      view.showEnd(reason, code, { rejoin: reason === "left" ? () => window.location.reload() : null });
    }
    // showEnd moves the focus to the end screen's heading, which is read out.
  });

  window.addEventListener("pagehide", () => {
    // A reload or navigation keeps the seat for the grace period (the secret stays).
    mesh.close();
  });
  window.addEventListener("pageshow", (e) => {
    // Back from the back/forward cache: the connections are gone; resume from scratch.
    if (e.persisted) window.location.reload();
  });

  // -- debug handle (see the header comment) ------------------------------------------------

  Object.defineProperty(window, "roomserverDebug", {
    configurable: false,
    enumerable: false,
    value: Object.freeze({
      get state() { return view.state; },
      get selfId() { return app.self?.id ?? null; },
      get role() { return app.self?.role ?? null; },
      get sockets() { return signalling.sockets; },
      get statsSent() { return mesh.sentStats; },
      peers: () => [...app.peers.values()].map((p) => ({ ...p, state: { ...p.state } })),
      connections: () => Object.fromEntries([...mesh.links].map(([id, link]) => [id, link.pc])),
      generations: () => Object.fromEntries([...mesh.links].map(([id, link]) => [id, link.generation])),
      counters: () => Object.fromEntries([...mesh.links].map(([id, link]) => [id, { ...link.counters }])),
      inboundVideo: () => mesh.inboundVideo(),
      chatOpen: () => chat.openCount,
      drop: () => signalling.drop(),
    }),
  });

  await media.ready;
  if (media.problem) {
    const key = `room.media.${media.problem}`;
    const text = t(key);
    view.mediaProblem(text === key ? t("room.media.other") : text);
  }
  if (!media.mic) { app.mine.mic = false; view.setControlDisabled("mic", true); }
  if (!media.camera) { app.mine.camera = false; view.setControlDisabled("camera", true); }
  applyMine();
  signalling.start();
}

main().catch((error) => {
  console.error(error);
  document.body.dataset.roomState = "error";
});
