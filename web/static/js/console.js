// The counsellor console: today's consultations (open the room, invite, end), and a form to
// create one. Uses the REST API with the session cookie and the page's CSRF token, and the
// console's own JSON endpoints for today's list and the counsellor's join token.

import { initI18n, t } from "./i18n.js";
import { request, errorText } from "./staffapi.js";
import { mountInvitePanel } from "./invite.js";
import { el } from "./dom.js";

const JOIN_KEY = "roomserver.join";
const REFRESH_MS = 30000;

const $ = (id) => document.getElementById(id);
const lang = () => document.documentElement.lang || "de";
let rooms = [];
let pendingEnd = null;
let invitePanel = null;
let lastTrigger = null;


function say(id, text, kind = "") {
  const node = $(id);
  node.textContent = text;
  node.className = `message${kind ? " message-" + kind : ""}`;
}

function today() {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  const end = new Date(start);
  end.setDate(end.getDate() + 1);
  return [start, end];
}

function clock(iso) {
  return new Intl.DateTimeFormat(lang(), { hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

function timeText(room) {
  if (!room.scheduled_start) return t("console.time.none");
  const end = room.scheduled_end ? clock(room.scheduled_end) : "";
  return t("console.time.range", { start: clock(room.scheduled_start), end });
}

function startOf(room) {
  return Date.parse(room.scheduled_start || room.created_at) || 0;
}

// list ---------------------------------------------------------------------------------------

async function loadRooms({ quiet = false } = {}) {
  const [from, to] = today();
  const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  try {
    const data = await request("GET", `/console/rooms?${query}`);
    rooms = data.rooms.sort((a, b) => startOf(a) - startOf(b));
    renderRooms();
    if (!quiet) say("rooms-status", "");
  } catch (err) {
    say("rooms-status", errorText(err), "error");
  }
}

function renderRooms() {
  const focused = document.activeElement;
  const refocus = focused && focused.dataset && focused.dataset.room
    ? [focused.dataset.room, focused.dataset.action] : null;
  const body = $("rooms-body");
  body.replaceChildren(...rooms.map(roomRow));
  $("rooms").hidden = rooms.length === 0;
  $("rooms-empty").hidden = rooms.length !== 0;
  if (refocus) {
    const again = body.querySelector(`button[data-room="${CSS.escape(refocus[0])}"][data-action="${refocus[1]}"]`);
    if (again) again.focus();
  }
}

function roomRow(room) {
  const ended = room.state === "ended";
  const action = (name, label, kind = "") => {
    const button = el("button", {
      type: "button", class: kind, text: label, "data-room": room.id, "data-action": name,
      "aria-label": `${label}: ${room.title}`,
    });
    button.addEventListener("click", () => ACTIONS[name](room, button));
    return button;
  };
  const actions = ended ? [] : [
    action("open", t("console.open"), "button-primary"),
    action("invite", t("console.invite")),
    action("end", t("console.end"), "button-danger"),
  ];
  return el("tr", { "data-room-id": room.id, "data-state": room.state },
    el("td", { text: timeText(room) }),
    el("th", { scope: "row", text: room.title }),
    el("td", {}, el("span", { class: `state state-${room.state}`, text: t(`console.state.${room.state}`) })),
    el("td", { text: t(room.waiting_room ? "console.waiting.on" : "console.waiting.off") }),
    el("td", { class: "actions" }, ...actions));
}

// actions ------------------------------------------------------------------------------------

const ACTIONS = {
  async open(room, button) {
    button.disabled = true;
    say("rooms-status", t("console.opening"));
    try {
      const joined = await request("POST", `/console/rooms/${encodeURIComponent(room.id)}/join`);
      sessionStorage.setItem(JOIN_KEY, JSON.stringify({
        room: joined.room, token: joined.token, name: joined.name,
        audioInput: null, videoInput: null, audioOutput: null,
      }));
      window.location.assign(`/room/${encodeURIComponent(joined.room)}`);
    } catch (err) {
      button.disabled = false;
      say("rooms-status", errorText(err), "error");
      if (err.code === "room_ended") loadRooms({ quiet: true });
    }
  },

  async invite(room, button) {
    lastTrigger = button;
    const dialog = $("invite-dialog");
    $("invite-dialog-title").textContent = t("console.invite.title", { title: room.title });
    dialog.showModal();
    try {
      invitePanel = await mountInvitePanel($("invite-panel"), room.id);
      const first = $("invite-panel").querySelector("input");
      if (first && dialog.open) first.focus();
    } catch (err) {
      say("rooms-status", errorText(err), "error");
      dialog.close();
    }
  },

  end(room, button) {
    lastTrigger = button;
    pendingEnd = room;
    $("end-text").textContent = t("console.end.text", { title: room.title });
    $("end-dialog").returnValue = "";
    $("end-dialog").showModal();
  },
};

async function endConfirmed(room) {
  try {
    await request("POST", `/api/v1/rooms/${encodeURIComponent(room.id)}/end`, { body: { reason: "completed" } });
    say("rooms-status", t("console.end.done", { title: room.title }), "ok");
  } catch (err) {
    say("rooms-status", errorText(err), "error");
  }
  await loadRooms({ quiet: true });
  $("rooms-title").focus();
}

function restoreFocus() {
  if (lastTrigger && lastTrigger.isConnected) lastTrigger.focus();
  else $("rooms-title").focus();
  lastTrigger = null;
}

// create -------------------------------------------------------------------------------------

function defaultStart() {
  const now = new Date();
  const next = new Date(now);
  next.setMinutes(Math.ceil((now.getMinutes() + 1) / 15) * 15, 0, 0);
  const pick = next.getDate() === now.getDate() ? next : now;
  return `${String(pick.getHours()).padStart(2, "0")}:${String(pick.getMinutes()).padStart(2, "0")}`;
}

async function create(event) {
  event.preventDefault();
  const titleInput = $("create-name");
  const startInput = $("create-start");
  const title = titleInput.value.trim();
  for (const input of [titleInput, startInput]) input.removeAttribute("aria-invalid");
  if (!title || title.length > 200) {
    titleInput.setAttribute("aria-invalid", "true");
    say("create-status", t("console.error.title"), "error");
    titleInput.focus();
    return;
  }
  const match = /^(\d{2}):(\d{2})/.exec(startInput.value);
  if (!match) {
    startInput.setAttribute("aria-invalid", "true");
    say("create-status", t("console.error.start"), "error");
    startInput.focus();
    return;
  }
  const start = new Date();
  start.setHours(Number(match[1]), Number(match[2]), 0, 0);
  const end = new Date(start.getTime() + Number($("create-duration").value) * 60000);
  const body = {
    title,
    scheduled_start: start.toISOString(),
    scheduled_end: end.toISOString(),
    waiting_room: $("create-waiting").checked,
  };
  $("create-submit").disabled = true;
  try {
    const room = await request("POST", "/api/v1/rooms", { body });
    say("create-status", t("console.create.done", { title: room.title }), "ok");
    titleInput.value = "";
    await loadRooms({ quiet: true });
  } catch (err) {
    if (err.code === "invalid_schedule") startInput.setAttribute("aria-invalid", "true");
    say("create-status", errorText(err), "error");
  } finally {
    $("create-submit").disabled = false;
  }
}

// start --------------------------------------------------------------------------------------

async function main() {
  await initI18n();
  $("rooms-title").setAttribute("tabindex", "-1");
  $("rooms-date").textContent = new Intl.DateTimeFormat(lang(), { dateStyle: "full" }).format(new Date());
  $("create-start").value = defaultStart();
  $("create-form").addEventListener("submit", create);

  $("end-dialog").addEventListener("close", () => {
    const room = pendingEnd;
    pendingEnd = null;
    const confirmed = $("end-dialog").returnValue === "confirm";
    restoreFocus();
    if (room && confirmed) endConfirmed(room);
  });
  $("invite-dialog").addEventListener("close", () => {
    if (invitePanel) invitePanel.destroy();
    invitePanel = null;
    restoreFocus();
  });

  say("rooms-status", t("console.loading"));
  await loadRooms();
  document.body.dataset.ready = "true";
  setInterval(() => {
    if (!document.hidden && !$("end-dialog").open && !$("invite-dialog").open) loadRooms({ quiet: true });
  }, REFRESH_MS);
}

main();
