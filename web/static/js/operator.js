// The operator dashboard: live rooms, participants and their figures, calls, events — from
// the Server-Sent Events feed /operator/feed. No media, no way to join. Ending a room and
// removing a participant ask first in a <dialog>, then POST with the session's CSRF token.
// Below, the newest consents to the citizens' data notice with the version each was given to
// (GET /operator/consents, on load and on "refresh"), and the outbox: how many messages wait or
// failed, the failed ones with "Erneut senden" (GET /api/v1/outbox, POST …/retry).
import { initI18n, t } from "./i18n.js";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const roomsEl = document.getElementById("rooms");
const emptyEl = document.getElementById("rooms-empty");
const countEl = document.getElementById("rooms-count");
const eventsEl = document.getElementById("events");
const statusEl = document.getElementById("feed-status");
const dialog = document.getElementById("confirm");
const MAX_EVENTS = 100;
let latest = { rooms: [] };
const titles = new Map(); // room id -> title, kept after a room ended so its events stay readable
let skew = 0; // server clock minus ours, ms

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const shortId = (id) => (id || "").slice(0, 8);
const TIME_FORMAT = { hour: "2-digit", minute: "2-digit", second: "2-digit" };
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString(document.documentElement.lang, TIME_FORMAT) : "–");

function duration(iso) {
  if (!iso) return "–";
  const seconds = Math.max(0, Math.floor((Date.now() + skew - new Date(iso).getTime()) / 1000));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(s).padStart(2, "0")}`;
}

function figure(value, unit, bad) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "–");
  return el("span", { class: bad ? "op-bad" : "" }, `${value}${unit}`);
}

function roleText(role) { return t(`operator.role.${role}`); }

function participantRow(room, p) {
  const f = p.figures || {};
  const loss = f.loss === null || f.loss === undefined ? null : Math.round(f.loss * 1000) / 10;
  const remove = el("button", { type: "button", class: "button-danger", "data-action": "remove" }, t("operator.remove"));
  remove.setAttribute("aria-label", t("operator.remove_label", { role: roleText(p.role), seat: shortId(p.seat) }));
  remove.addEventListener("click", () => confirmThen(
    t("operator.confirm_remove", { role: roleText(p.role), seat: shortId(p.seat), room: room.title }),
    `/operator/rooms/${encodeURIComponent(room.id)}/seats/${encodeURIComponent(p.seat)}/remove`));
  return el("tr", { "data-seat": p.seat },
    el("td", {}, roleText(p.role)),
    el("td", {}, el("code", {}, shortId(p.seat))),
    el("td", { class: `op-conn-${p.connection}` },
      p.status === "waiting" ? t("operator.status.waiting") : t(`operator.conn.${p.connection}`)),
    el("td", { class: "op-rtt" }, figure(f.rtt_ms, " ms", f.rtt_ms > 400)),
    el("td", { class: "op-loss" }, figure(loss, " %", loss > 5)),
    el("td", { class: "op-bitrate" }, figure(f.bitrate_kbps, " kbit/s", false)),
    el("td", { class: "op-path", "data-path": f.candidate_type || "" },
      f.candidate_type ? t(`operator.path.${f.candidate_type}`) : el("span", { class: "muted" }, "–")),
    el("td", {}, remove));
}

function roomCard(room) {
  const titleId = `room-${room.id}-title`;
  const card = el("article", { class: "op-room", "data-room-id": room.id });
  card.setAttribute("aria-labelledby", titleId);
  card.append(el("h3", { id: titleId }, room.title));
  const roles = Object.entries(room.by_role).map(([role, n]) => `${roleText(role)}: ${n}`).join(", ") || "–";
  const meta = el("dl", { class: "op-room-meta" });
  const item = (label, value, cls) => meta.append(el("div", {}, el("dt", {}, label), el("dd", { class: cls }, value)));
  item(t("operator.state"), t(`operator.state.${room.state}`), `op-state-${room.state}`);
  item(t("operator.started"), fmtTime(room.started_at));
  item(t("operator.duration"), duration(room.started_at), "op-duration");
  item(t("operator.by_role"), roles, "op-by-role");
  item(t("operator.waiting"), room.waiting, "op-waiting");
  card.append(meta);
  if (room.participants.length) {
    const table = el("table", { class: "op-table" },
      el("caption", { class: "op-hidden" }, t("operator.participants_of", { room: room.title })),
      el("thead", {}, el("tr", {}, ...["role", "seat", "connection", "rtt", "loss", "bitrate", "path", "actions"]
        .map((c) => el("th", { scope: "col" }, t(`operator.col.${c}`))))),
      el("tbody", {}, ...room.participants.map((p) => participantRow(room, p))));
    card.append(table);
  }
  if (room.calls.length) {
    card.append(el("h4", {}, t("operator.calls")));
    card.append(el("ul", { class: "op-calls" }, ...room.calls.map((c) =>
      el("li", { "data-call": c.id }, `${c.target_label} – ${t(`operator.call.${c.state}`)}`))));
  }
  const end = el("button", { type: "button", class: "button-danger", "data-action": "end" }, t("operator.end"));
  end.setAttribute("aria-label", t("operator.end_label", { room: room.title }));
  end.addEventListener("click", () => confirmThen(t("operator.confirm_end", { room: room.title }),
    `/operator/rooms/${encodeURIComponent(room.id)}/end`));
  card.append(end);
  return card;
}

/** The answer-rate alerts: offices that answered too few calls in the last window (ops/alerts.py). */
function renderAlerts() {
  const alerts = latest.alerts || [];
  document.getElementById("alerts").hidden = alerts.length === 0;
  document.getElementById("alerts-list").replaceChildren(...alerts.map((a) => el("li", { "data-department": a.department },
    t("operator.alert.answer_rate_low", { office: a.label, rate: `${Math.round(100 * (a.answer_rate || 0))} %`,
                                         calls: a.calls, minutes: a.window_minutes }))));
}

function render() {
  renderAlerts();
  const focused = document.activeElement;
  const focusCard = focused?.closest?.("[data-room-id]");
  const focusKey = focusCard
    ? [focusCard.dataset.roomId, focused.closest("[data-seat]")?.dataset.seat, focused.dataset.action] : null;
  roomsEl.replaceChildren(...latest.rooms.map(roomCard));
  emptyEl.hidden = latest.rooms.length > 0;
  countEl.textContent = `(${latest.rooms.length})`;
  if (focusKey) { // keep keyboard focus across live updates
    const [roomId, seat, action] = focusKey;
    const card = roomsEl.querySelector(`[data-room-id="${CSS.escape(roomId)}"]`);
    const scope = seat ? card?.querySelector(`[data-seat="${CSS.escape(seat)}"]`) : card;
    scope?.querySelector(`[data-action="${action}"]`)?.focus();
  }
}

/** One line of the event list, a sentence that starts with its time: "10:31:02 Fachkraft p_ab12 ist beigetreten – Raum". */
function eventItem(e) {
  const who = [e.role ? roleText(e.role) : "", e.seat ? shortId(e.seat) : ""].filter(Boolean).join(" ");
  const what = t(`operator.event.${e.kind}`, { who: who || t("operator.someone") });
  const where = e.room ? ` – ${e.title || titles.get(e.room) || shortId(e.room)}` : "";
  return el("li", { "data-kind": e.kind }, el("time", { dateTime: e.at }, fmtTime(e.at)), `${what}${where}`);
}

function addEvent(e) {
  eventsEl.prepend(eventItem(e));
  while (eventsEl.children.length > MAX_EVENTS) eventsEl.lastElementChild.remove();
}

function confirmThen(text, url) {
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "ok") return;
    try {
      const r = await fetch(url, { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        statusEl.textContent = t("operator.action_failed", { message: body.message || r.status });
      } else {
        statusEl.textContent = t("operator.action_done");
      }
    } catch {
      statusEl.textContent = t("operator.action_failed", { message: "network" });
    }
  }, { once: true });
  dialog.showModal();
  document.getElementById("confirm-cancel").focus();
}

function connect() {
  const source = new EventSource("/operator/feed");
  source.addEventListener("open", () => { statusEl.textContent = t("operator.live"); });
  source.addEventListener("error", () => { statusEl.textContent = t("operator.reconnecting"); });
  source.addEventListener("snapshot", (msg) => {
    latest = JSON.parse(msg.data);
    for (const r of latest.rooms) titles.set(r.id, r.title);
    skew = new Date(latest.now).getTime() - Date.now();
    if (!eventsEl.dataset.filled) { // the first snapshot carries the recent history
      eventsEl.dataset.filled = "1";
      eventsEl.replaceChildren();
      for (const e of latest.events) addEvent(e);
    }
    render();
    document.body.dataset.ready = "true";
  });
  source.addEventListener("event", (msg) => {
    if (eventsEl.dataset.filled) addEvent(JSON.parse(msg.data));
  });
}

const fmtDateTime = (iso) => (iso ? new Date(iso).toLocaleString(document.documentElement.lang,
  { dateStyle: "short", timeStyle: "medium" }) : "–");

function consentRow(c) {
  const status = [t(c.current ? "operator.consent.current" : "operator.consent.older")];
  if (c.withdrawn_at) status.push(t("operator.consent.withdrawn", { time: fmtDateTime(c.withdrawn_at) }));
  return el("tr", { "data-notice": c.notice, "data-current": String(c.current) },
    el("td", {}, el("time", { dateTime: c.given_at }, fmtDateTime(c.given_at))),
    el("td", {}, `${c.room_title || "–"} `, el("code", {}, shortId(c.room))),
    el("td", {}, c.role ? roleText(c.role) : "–"),
    el("td", {}, el("code", {}, c.notice)),
    el("td", { class: c.current && !c.withdrawn_at ? "" : "op-state-reconnecting" }, status.join(", ")));
}

async function loadConsents() {
  const status = document.getElementById("consents-status");
  const table = document.getElementById("consents");
  try {
    const r = await fetch("/operator/consents", { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) throw new Error(String(r.status));
    const body = await r.json();
    table.tBodies[0].replaceChildren(...body.consents.map(consentRow));
    table.hidden = body.consents.length === 0;
    document.getElementById("consents-empty").hidden = body.consents.length > 0;
    status.textContent = "";
  } catch {
    status.textContent = t("operator.consents.failed");
  }
}

document.getElementById("consents-refresh").addEventListener("click", loadConsents);

async function outboxCall(method, url) {
  const r = await fetch(url, { method, credentials: "same-origin", cache: "no-store",
    headers: method === "POST" ? { "X-CSRF-Token": csrf } : {} });
  if (!r.ok) throw new Error(String(r.status));
  return r.json();
}

function outboxRow(m) {
  const button = el("button", { type: "button", class: "button-quiet", textContent: t("operator.outbox.retry") });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await outboxCall("POST", `/api/v1/outbox/${encodeURIComponent(m.id)}/retry`);
      document.getElementById("outbox-status").textContent = t("operator.outbox.retried");
    } catch {
      document.getElementById("outbox-status").textContent = t("operator.outbox.load_failed");
    }
    loadOutbox();
  });
  const what = `${t(`operator.outbox.kind.${m.kind}`)}${m.type ? ` (${m.type})` : ""}`;
  return el("tr", { "data-id": String(m.id) },
    el("td", {}, el("time", { dateTime: m.done_at || m.created_at }, fmtDateTime(m.done_at || m.created_at))),
    el("td", {}, what),
    el("td", {}, String(m.attempts)),
    el("td", {}, el("code", {}, m.last_error || "–")),
    el("td", {}, button));
}

async function loadOutbox() {
  const status = document.getElementById("outbox-status");
  const table = document.getElementById("outbox");
  try {
    const body = await outboxCall("GET", "/api/v1/outbox?state=failed&limit=50");
    const sum = (state) => Object.values(body.counts).reduce((n, by) => n + (by[state] || 0), 0);
    const counts = document.getElementById("outbox-counts");
    counts.dataset.pending = String(sum("pending"));
    counts.dataset.failed = String(sum("failed"));
    counts.textContent = t("operator.outbox.counts", { pending: sum("pending"), failed: sum("failed") });
    table.tBodies[0].replaceChildren(...body.messages.map(outboxRow));
    table.hidden = body.messages.length === 0;
    document.getElementById("outbox-empty").hidden = body.messages.length > 0;
    document.getElementById("outbox-retry-all").hidden = body.messages.length === 0;
  } catch {
    status.textContent = t("operator.outbox.load_failed");
  }
}

document.getElementById("outbox-refresh").addEventListener("click", loadOutbox);
document.getElementById("outbox-retry-all").addEventListener("click", async () => {
  try {
    const body = await outboxCall("POST", "/api/v1/outbox/retry-failed");
    document.getElementById("outbox-status").textContent = t("operator.outbox.retried_all", { count: body.retried });
  } catch {
    document.getElementById("outbox-status").textContent = t("operator.outbox.load_failed");
  }
  loadOutbox();
});
setInterval(loadOutbox, 15000);

setInterval(() => {
  for (const node of roomsEl.querySelectorAll(".op-room")) {
    const room = latest.rooms.find((r) => r.id === node.dataset.roomId);
    const cell = node.querySelector(".op-duration");
    if (room && cell) cell.textContent = duration(room.started_at);
  }
}, 1000);

await initI18n();
connect();
loadConsents();
loadOutbox();
