// Entry module of the in-room page, /room/{room_id} (every role).
//
// How the token gets here: roomentry.js (the ENTRY CONTRACT other pages depend on).
// What the page looks like: room.css and stagelayout.js (the stage fills the screen, one
// side drawer, the control bar always in view; phone-first for citizens).
// Staff pages may carry <meta name="csrf-token"> and <body data-staff="<role>">: a counsellor
// then gets the people pane (waiting room, participants), the call panel (callpanel.js,
// mountCallPanel(container, signallingClient)) and the invite panel (invite.js,
// mountInvitePanel(container, roomId)); every staff member gets the way back to the console
// or the desk when the consultation is over for them.
//
// DEBUG HANDLE: window.roomserverDebug (read-only views of this page's own objects, for
// the Chromium tests and for support: state, seat id, connections, received-video
// figures, tile boxes, knocks, and drop() to simulate a network drop). It holds nothing that
// is not already reachable by this page's own scripts (the CSP admits no other script), and
// no token.

import { RESUME_PREFIX, entryFor, roomId, storageGet, storageSet, storeToken } from "./roomentry.js";
import { initI18n, t } from "./i18n.js";
import { SignallingClient, signallingUrl } from "./signalling.js";
import { Mesh } from "./mesh.js";
import { Chat } from "./chat.js";
import { RoomView, isolate, roleLabel } from "./roomview.js";
import { Tiles } from "./tiles.js";
import { Drawer } from "./drawer.js";
import { ChatView } from "./chatview.js";
import { Moderation } from "./moderation.js";
import { Knocker } from "./knock.js";
import { SpeakerWatch } from "./speaker.js";
import { LocalMedia, canShareScreen } from "./localmedia.js";
import { startQuality } from "./quality.js";
import { watchNetwork } from "./netadvice.js";
import { features } from "./support.js";

const STAFF_ROLE = document.body.dataset.staff || null;
const HAS_DESK = STAFF_ROLE === "expert" || STAFF_ROLE === "interpreter";
const HAS_CONSOLE = STAFF_ROLE === "counsellor" || STAFF_ROLE === "admin";
const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";
const $ = (id) => document.getElementById(id);

async function main() {
  await initI18n();
  const view = new RoomView();
  const entry = entryFor();
  const resumeKey = RESUME_PREFIX + roomId;
  const secret = storageGet(resumeKey);

  if (!roomId || (!entry.token && !secret)) {
    view.showEnd("error", "no_token", { actions: wayBack() });
    return;
  }
  const support = features();
  if (!support.call) {
    view.showEnd("error", "unsupported_browser"); // a clear page instead of a broken call (docs/browsers.md)
    return;
  }

  const media = new LocalMedia(entry);
  const tiles = new Tiles($("tiles"), $("stage"), { announce: (text) => view.announce(text), roleLabel });
  tiles.setAudioOutput(entry.audioOutput);
  const drawer = new Drawer($("drawer"), $("screen-call"));
  const chatView = new ChatView($("chat-log"), $("chat-form"), $("chat-input"));
  const knocker = new Knocker();

  const app = {
    self: null,
    room: null,
    peers: new Map(),
    lobby: [],
    mine: { mic: true, camera: true, screen: false, hand: false },
    inCall: false,
    moderationReady: false,
    unread: 0,
    invitePanel: null,
  };

  const signalling = new SignallingClient({
    url: signallingUrl(), token: entry.token, secret, name: entry.name, room: roomId,
    onSecret: (value) => storageSet(resumeKey, value),
  });
  const mesh = new Mesh({ send: (m) => signalling.send(m), media });
  const chat = new Chat();
  const speaker = new SpeakerWatch(() => new Map([...mesh.links].map(([id, link]) => [id, link.pc])));
  speaker.addEventListener("speaker", (e) => tiles.setSpeaker(e.detail.id));
  // Connection quality: adapts what we send, shows "Verbindung schwach", offers audio only.
  const quality = startQuality(mesh, { onAudioOnly: (on) => setCamera(!on) });
  watchNetwork(mesh); // media blocked by the network: what to ask IT for

  const person = (id) => app.peers.get(id);
  const nameOf = (id) => person(id)?.name || t("room.someone");
  const selfPerson = () => app.self && { id: app.self.id, name: app.self.name, role: app.self.role, state: app.mine };
  const isModerator = () => app.self?.role === "counsellor";

  // -- rendering helpers --------------------------------------------------------------

  function renderSelfTile() {
    const me = selfPerson();
    if (!me) return;
    tiles.upsert(me, { self: true });
    const video = media.track("video");
    tiles.setStream(me.id, video ? new MediaStream([video]) : null);
  }

  function renderPeople() {
    if (!isModerator()) return;
    moderation.renderPeople(selfPerson(), [...app.peers.values()], (id) => tiles.connection(id));
  }

  function renderLobby() {
    if (!isModerator()) return;
    moderation.renderLobby(app.lobby);
    const waiting = app.lobby.length;
    view.setBadge("people", waiting, t("staff.badge.waiting", { count: waiting }));
    view.setTitleCount(waiting);
  }

  function event(text) {
    chatView.append({ notice: true, text });
  }

  function refreshInvites() {
    app.invitePanel?.refreshList();
  }

  const moderation = new Moderation({
    roleLabel,
    onAdmit: (w) => signalling.send({ type: "admit", peer: w.id }),
    onDeny: (w) => signalling.send({ type: "deny", peer: w.id }),
    onRemove: removePeer,
    onRelease: releasePeer,
  });

  tiles.addEventListener("layout", (e) => {
    $("alone").hidden = !(app.inCall && e.detail.remote === 0);
    view.showControl("layout", e.detail.remote > 1);
  });
  tiles.addEventListener("state", (e) => moderation.setConnection(e.detail.id, e.detail.connection));

  // -- moderation ----------------------------------------------------------------------

  async function removePeer(peer) {
    const ok = await view.confirm({
      title: t("room.confirm.remove.title", { name: peer.name }),
      text: t("room.confirm.remove.text", { name: peer.name }),
      ok: t("room.confirm.remove.ok"),
    });
    if (ok) signalling.send({ type: "remove", peer: peer.id });
  }

  /** Experts and interpreters are released, not removed: thanked, and free at their desk again. */
  async function releasePeer(peer) {
    const ok = await view.confirm({
      title: t("staff.release.title", { name: peer.name }),
      text: t("staff.release.text", { name: peer.name }),
      ok: t("staff.release.ok"),
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
    if (app.moderationReady || !isModerator()) return;
    app.moderationReady = true;
    document.body.classList.add("moderator");
    view.showControl("people", true);
    view.showControl("end", true);
    view.showControl("hand", false);
    view.onControl("end", endRoom);
    if (HAS_CONSOLE) {
      import("./invite.js")
        .then(async (mod) => {
          app.invitePanel = await mod.mountInvitePanel($("invite-panel"), roomId);
          $("invite-panel").querySelector("input[type=text]")?.setAttribute("data-autofocus", "");
          view.showControl("invite", true);
        })
        .catch(() => { /* no invite panel on this installation */ });
      // The call panel talks through this page's signalling client (send + "message" events).
      import("./callpanel.js")
        .then(async (mod) => {
          const panel = await mod.mountCallPanel($("call-panel"), signalling);
          if (panel) view.showControl("expert", true);
        })
        .catch(() => { /* no call panel on this installation */ });
    }
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
    if (app.self) tiles.upsert(selfPerson(), { self: true });
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
    if (typeof navigator.mediaDevices?.getDisplayMedia !== "function") return;
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
  function setCamera(on) {
    if (!media.camera || app.mine.camera === on) return;
    app.mine.camera = on;
    applyMine();
    sendState({ camera: app.mine.camera });
    view.announce(t(app.mine.camera ? "room.announce.camera_on" : "room.announce.camera_off"));
  }
  view.onControl("camera", () => {
    if (!app.mine.camera && quality.audioOnly) quality.setAudioOnly(false); // calls setCamera(true)
    else setCamera(!app.mine.camera);
  });
  // Nothing offered that the device cannot do (no screen sharing on phones, or where the browser lacks it).
  view.showControl("screen", canShareScreen() && support.screenShare);
  view.onControl("screen", toggleScreen);
  view.onControl("hand", () => {
    app.mine.hand = !app.mine.hand;
    applyMine();
    sendState({ hand: app.mine.hand });
    view.announce(t(app.mine.hand ? "room.announce.hand_on" : "room.announce.hand_off"));
  });
  view.onControl("layout", () => {
    const on = $("ctl-layout").getAttribute("aria-pressed") !== "true";
    view.setToggle("layout", on);
    tiles.setSpeakerView(on);
  });
  view.onControl("leave", () => signalling.leave());
  $("waiting-leave").addEventListener("click", () => signalling.leave());

  // -- drawer and chat -----------------------------------------------------------------

  $("chat-input").setAttribute("data-autofocus", "");
  drawer.addEventListener("change", (e) => {
    if (e.detail.pane === "chat") {
      app.unread = 0;
      view.setBadge("chat", 0);
    }
    tiles.schedule();
  });
  chatView.onSubmit((text) => {
    const sent = chat.send(text);
    if (!sent) {
      event(t("room.chat.not_sent"));
      return false;
    }
    chatView.append({ own: true, text });
    return true;
  });
  chat.addEventListener("message", (e) => {
    chatView.append({ from: nameOf(e.detail.peerId), text: e.detail.text });
    if (!drawer.isOpen("chat")) {
      app.unread += 1;
      view.setBadge("chat", app.unread, t("room.badge.unread", { count: app.unread }));
    }
  });
  chat.addEventListener("change", (e) => chatView.setReach(e.detail.open));
  chatView.setReach(0);

  // -- mesh --------------------------------------------------------------------------

  mesh.addEventListener("track", (e) => tiles.setStream(e.detail.peerId, e.detail.stream));
  mesh.addEventListener("connection", (e) => tiles.setRtcState(e.detail.peerId, e.detail.state));
  mesh.addEventListener("channel", (e) => chat.attach(e.detail.peerId, e.detail.channel));
  mesh.addEventListener("link-closed", (e) => {
    chat.detach(e.detail.peerId);
    tiles.setRtcState(e.detail.peerId, "new");
  });

  // -- signalling ----------------------------------------------------------------------

  function addPeer(peer) {
    const known = { id: peer.id, name: peer.name, role: peer.role, connection: peer.connection || "online",
      state: { mic: true, camera: true, screen: false, hand: false, ...(peer.state || {}) } };
    app.peers.set(peer.id, known);
    tiles.upsert(known);
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
          tiles.remove(id);
        }
      }
      for (const peer of m.peers || []) addPeer(peer);
      for (const [id, tile] of tiles.tiles) if (tile.self && id !== app.self.id) tiles.remove(id);
      renderSelfTile();
      mesh.welcome(m);
      app.inCall = true;
      view.setState("in-call");
      view.status("");
      // Entering (or admitted from the waiting room): the focus goes to the call's heading, so a
      // screen reader says where one is and the next Tab reaches the controls, not a tile.
      view.showScreen("call", { focus: !wasInCall });
      setUpModeration();
      renderPeople();
      renderLobby();
      applyMine();
      syncState(m.self.state);
      tiles.schedule();
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
      const preview = $("waiting-preview");
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
      const arrived = app.lobby.filter((w) => !before.has(w.id));
      for (const w of arrived) event(t("room.event.waiting", { name: isolate(w.name), role: roleLabel(w.role) }));
      if (arrived.length && isModerator()) {
        // A knock: heard (when the browser lets the page sound), seen (the badge), read out.
        knocker.knock();
        view.announce(t("staff.knock", { name: arrived.map((w) => w.name).join(", ") }));
      }
      if (before.size > app.lobby.length) refreshInvites(); // admitted or turned away
    },
    "peer-joined"(m) {
      const peer = addPeer(m.peer);
      mesh.peerJoined(peer.id);
      renderPeople();
      event(t("room.event.joined", { name: isolate(peer.name), role: roleLabel(peer.role) }));
      refreshInvites();
    },
    "peer-left"(m) {
      const left = person(m.peer);
      const name = isolate(nameOf(m.peer));
      app.peers.delete(m.peer);
      mesh.peerLeft(m.peer);
      tiles.remove(m.peer);
      renderPeople();
      let reason = ["left", "removed", "timeout", "ended"].includes(m.reason) ? m.reason : "left";
      if (reason === "removed" && (left?.role === "expert" || left?.role === "interpreter")) reason = "released";
      event(t(`room.event.left_${reason}`, { name }));
      if (reason === "removed" || reason === "released") refreshInvites();
    },
    "peer-reconnecting"(m) {
      const peer = person(m.peer);
      if (!peer) return;
      peer.connection = "reconnecting";
      tiles.upsert(peer);
      event(t("room.event.reconnecting", { name: isolate(peer.name) }));
    },
    "peer-resumed"(m) {
      const peer = person(m.peer);
      if (!peer) return;
      peer.connection = "online";
      mesh.peerResumed(peer.id);
      tiles.upsert(peer);
      event(t("room.event.resumed", { name: isolate(peer.name) }));
    },
    "peer-state"(m) {
      const peer = person(m.peer);
      if (!peer) return;
      const hadHand = peer.state.hand;
      peer.state = { ...peer.state, ...(m.state || {}) };
      tiles.upsert(peer);
      if (peer.state.hand && !hadHand) event(t("room.event.hand", { name: isolate(peer.name) }));
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

  // -- the end: what fits this person ----------------------------------------------------

  /** Back to where this person works: the console or the desk (staff signed in on this browser). */
  function wayBack() {
    if (HAS_CONSOLE) return [{ id: "console", text: t("staff.end.to_console"), href: "/console" }];
    if (HAS_DESK) return [{ id: "desk", text: t("staff.end.to_desk"), href: "/desk" }];
    return [];
  }

  async function counsellorRejoin() {
    // The console mints the signed-in counsellor a fresh token; without a session the stored one is tried.
    if (CSRF) {
      try {
        const r = await fetch(`/console/rooms/${encodeURIComponent(roomId)}/join`, {
          method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": CSRF, Accept: "application/json" },
        });
        if (r.ok) storeToken((await r.json()).token);
      } catch {
        /* offline: the reload says so */
      }
    }
    window.location.reload();
  }

  function endScreen(reason, code) {
    const role = app.self?.role || null;
    if (reason === "error") return { kind: "error", code, actions: wayBack() };
    if (role === "counsellor") {
      const actions = wayBack();
      if (reason === "left") actions.unshift({ id: "rejoin", text: t("room.end.rejoin"), onClick: counsellorRejoin });
      return { kind: reason, code, prefix: `staff.end.host.${reason}`, actions };
    }
    if (role === "expert" || role === "interpreter") {
      // Their link was single-use: going back is the desk's "zurück in die Beratung", never a reload.
      return { kind: reason, code, prefix: `staff.end.${HAS_DESK ? "desk" : "link"}.${reason}`, actions: wayBack() };
    }
    const actions = reason === "left" ? [{ id: "rejoin", text: t("room.end.rejoin"), onClick: () => window.location.reload() }] : [];
    return { kind: reason, code, actions };
  }

  signalling.addEventListener("final", (e) => {
    const { reason, code } = e.detail;
    mesh.close();
    quality.stop();
    media.stop();
    speaker.stop();
    drawer.close({ restoreFocus: false });
    const end = endScreen(reason, code);
    view.showEnd(end.kind, end.code, { prefix: end.prefix, actions: end.actions });
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
      get knocks() { return knocker.knocks; },
      get speaker() { return tiles.speaker; },
      peers: () => [...app.peers.values()].map((p) => ({ ...p, state: { ...p.state } })),
      connections: () => Object.fromEntries([...mesh.links].map(([id, link]) => [id, link.pc])),
      generations: () => Object.fromEntries([...mesh.links].map(([id, link]) => [id, link.generation])),
      counters: () => Object.fromEntries([...mesh.links].map(([id, link]) => [id, { ...link.counters }])),
      inboundVideo: () => mesh.inboundVideo(),
      collectStats: () => mesh.collectStats(),
      quality: () => quality.snapshot(),
      chatOpen: () => chat.openCount,
      layout: () => Object.fromEntries([...tiles.layout()].map(([id, box]) => [id, { ...box }])),
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
