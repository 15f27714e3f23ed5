// How a person gets into the room page: the ENTRY CONTRACT (other pages depend on it).
//
//   * Token from the URL fragment: /room/{room}#<jwt> (direct links, e.g. for experts).
//     The fragment is removed from the address bar at once (history.replaceState), when this
//     module is first imported, and never reaches the server.
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

export const JOIN_KEY = "roomserver.join";
export const RESUME_PREFIX = "roomserver.resume.";

export const roomId = document.body.dataset.room || "";

let fragmentToken = null;
if (window.location.hash.length > 1) {
  try {
    fragmentToken = decodeURIComponent(window.location.hash.slice(1)).trim() || null;
  } catch {
    fragmentToken = window.location.hash.slice(1);
  }
  window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search);
}

export function storageGet(key) {
  try {
    return window.sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

export function storageSet(key, value) {
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

/** This page's entry: the fragment's token (stored for reloads) or the stored hand-over. */
export function entryFor() {
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

/** Replace the stored token (a counsellor's fresh one), keeping the device choices. */
export function storeToken(token) {
  const entry = { ...entryFor(), token };
  storageSet(JOIN_KEY, JSON.stringify(entry));
  storageSet(RESUME_PREFIX + roomId, null);
}
