// The counsellor's call panel in the room page: call a department's experts or an interpreter.
//
//   import { mountCallPanel } from "/static/js/callpanel.js";
//   const panel = await mountCallPanel(containerElement, client);   // null when not available
//
// `client` is the room page's SignallingClient (signalling.js): `send(message)` and the
// "message" event carrying every server message. The panel sends `call`, `call-cancel` and
// `callback` (docs/protocol.md) and shows the `call-status` replies: who is being rung, the
// countdown, who accepted; when nobody answered, call again, call another office, or leave a
// callback request. The list of departments and languages comes from GET /desk/directory,
// which needs a signed-in counsellor's session: without one (a room entered by a link only)
// the panel stays hidden and mountCallPanel resolves to null.
// Its styles are css/callpanel.css; the panel links them itself.

import { el } from "./dom.js";
import { initI18n, t } from "./i18n.js";

const REFRESH_MS = 20000;
const REFS = new Set(["call", "call-cancel", "callback"]);
let counter = 0;

function ensureStyles() {
  if (document.querySelector('link[rel="stylesheet"][href*="css/callpanel.css"]')) return;
  document.head.append(el("link", { rel: "stylesheet", href: "/static/css/callpanel.css" }));
}

async function fetchDirectory() {
  const r = await fetch("/desk/directory", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!r.ok) return null;
  return r.json();
}

class CallPanel {
  constructor(container, client, directory) {
    this.container = container;
    this.client = client;
    this.directory = directory;
    this.id = `callpanel-${++counter}`;
    this.calls = new Map(); // call id -> {call, li, timer}
    this.lastTarget = null;
    this.onMessage = (e) => this.message(e.detail);
    this.refreshTimer = null;
  }

  build() {
    const id = this.id;
    this.select = el("select", { id: `${id}-target`, name: "target" });
    this.select.addEventListener("focus", () => this.refresh()); // fresh counts when choosing
    this.fillSelect();
    this.callButton = el("button", { type: "button", class: "button call-start", text: t("call.start") });
    this.callButton.addEventListener("click", () => this.call(this.select.value));
    this.list = el("ul", { class: "call-list", "aria-labelledby": `${id}-title` });
    this.live = el("p", { class: "call-live visually-hidden", role: "status", "aria-live": "polite" });
    this.container.replaceChildren(
      el("h3", { id: `${id}-title`, text: t("call.title") }),
      el("div", { class: "call-form" },
        el("div", {}, el("label", { for: `${id}-target`, text: t("call.target") }), this.select),
        this.callButton),
      this.list, this.live);
    this.container.classList.add("call-panel");
    this.client.addEventListener("message", this.onMessage);
    this.refreshTimer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  options() {
    return [
      ...(this.directory.departments || []).map((d) => [`department:${d.id}`, t("call.option", { name: d.name, count: d.available })]),
      ...(this.directory.languages || []).map((l) => [`language:${l.code}`, t("call.option_language", { name: l.label, count: l.available })]),
    ];
  }

  fillSelect() {
    const wanted = this.options();
    const present = [...this.select.options];
    if (present.length === wanted.length && present.every((o, i) => o.value === wanted[i][0])) {
      present.forEach((o, i) => { if (o.textContent !== wanted[i][1]) o.textContent = wanted[i][1]; }); // in place
      return;
    }
    const chosen = this.select.value;
    this.select.replaceChildren();
    const depts = el("optgroup", { label: t("call.group.departments") });
    for (const d of this.directory.departments || []) {
      depts.append(el("option", { value: `department:${d.id}`,
        text: t("call.option", { name: d.name, count: d.available }) }));
    }
    const langs = el("optgroup", { label: t("call.group.languages") });
    for (const l of this.directory.languages || []) {
      langs.append(el("option", { value: `language:${l.code}`,
        text: t("call.option_language", { name: l.label, count: l.available }) }));
    }
    if (depts.children.length) this.select.append(depts);
    if (langs.children.length) this.select.append(langs);
    if (chosen) this.select.value = chosen;
  }

  async refresh() {
    try {
      const directory = await fetchDirectory();
      if (directory) {
        this.directory = directory;
        this.fillSelect();
      }
    } catch {
      /* keep the last list */
    }
  }

  say(text) {
    this.live.textContent = this.live.textContent === text ? `${text}\u00a0` : text;
  }

  labelOf(value) {
    const [kind, target] = value.split(/:(.*)/s);
    const list = kind === "department" ? this.directory.departments : this.directory.languages;
    const found = (list || []).find((x) => (x.id || x.code) === target);
    return found ? (found.name || found.label) : target;
  }

  call(value) {
    if (!value) return;
    const [kind, target] = value.split(/:(.*)/s);
    const message = kind === "language" ? { type: "call", language: target } : { type: "call", department: target };
    this.lastTarget = value;
    if (!this.client.send(message)) {
      this.say(t("call.error.offline"));
      this.showError(t("call.error.offline"));
      return;
    }
    this.say(t("call.sending", { target: this.labelOf(value) }));
  }

  showError(text) {
    const li = el("li", { class: "call-status call-error", "data-state": "error" }, el("p", { text }));
    this.list.prepend(li);
    setTimeout(() => li.remove(), 15000);
  }

  message(m) {
    if (!m || typeof m !== "object") return;
    if (m.type === "call-status" && m.call) this.status(m.call);
    else if (m.type === "error" && REFS.has(m.ref)) {
      const key = `call.error.${m.code}`;
      const text = t(key) === key ? t("call.error.other") : t(key);
      this.showError(text);
      this.say(text);
    }
  }

  status(call) {
    let entry = this.calls.get(call.id);
    if (!entry) {
      entry = { call, li: el("li", { class: "call-status", "data-call": call.id }), timer: null };
      this.calls.set(call.id, entry);
      this.list.prepend(entry.li);
    }
    const before = entry.call.state;
    entry.call = call;
    entry.value = `${call.kind}:${call.target}`;
    clearInterval(entry.timer);
    entry.timer = null;
    entry.li.dataset.state = call.state;
    const target = call.target_label || call.target;
    const body = [];
    let announce = null;
    if (call.state === "ringing") {
      const countdown = el("span", { class: "call-countdown" });
      const tick = () => {
        const left = Math.max(0, Math.round(call.expires_at - Date.now() / 1000));
        countdown.textContent = t("call.countdown", { seconds: left });
      };
      tick();
      entry.timer = setInterval(tick, 1000);
      const cancel = el("button", { type: "button", class: "button small call-cancel", text: t("call.cancel") });
      cancel.addEventListener("click", () => {
        cancel.disabled = true;
        if (!this.client.send({ type: "call-cancel", call: call.id })) cancel.disabled = false;
      });
      body.push(el("p", { text: t("call.ringing", { target, count: call.ringing }) }), el("p", {}, countdown),
        el("div", { class: "call-actions" }, cancel));
      if (before !== "ringing" || !entry.announced) announce = t("call.ringing", { target, count: call.ringing });
      entry.announced = true;
    } else if (call.state === "accepted") {
      body.push(el("p", { text: t("call.accepted", { name: call.accepted_by || t("call.someone"), target }) }));
      announce = body[0].textContent;
    } else if (call.state === "cancelled") {
      body.push(el("p", { text: t("call.cancelled", { target }) }));
      announce = body[0].textContent;
      setTimeout(() => this.forget(call.id), 10000);
    } else {
      // timed_out, no_one: nobody took it
      const again = el("button", { type: "button", class: "button small call-again", text: t("call.again") });
      const other = el("button", { type: "button", class: "button small call-other", text: t("call.other") });
      const callback = el("button", { type: "button", class: "button small call-callback", text: t("call.callback") });
      again.addEventListener("click", () => { this.forget(call.id); this.call(entry.value); });
      other.addEventListener("click", () => { this.forget(call.id); this.select.focus(); });
      callback.addEventListener("click", () => {
        if (this.client.send({ type: "callback", call: call.id })) {
          callback.disabled = true;
          const done = t("call.callback_sent", { target });
          entry.li.append(el("p", { class: "call-callback-sent", text: done }));
          this.say(done);
        }
      });
      body.push(el("p", { class: "call-nobody", text: t("call.nobody") }),
        el("p", { text: t(call.state === "no_one" ? "call.no_one" : "call.timed_out", { target }) }),
        el("div", { class: "call-actions" }, again, other, callback));
      announce = `${t("call.nobody")} ${body[1].textContent}`;
    }
    entry.li.replaceChildren(...body);
    if (announce) this.say(announce);
    if (call.state !== "ringing") this.refresh(); // who is available has changed
  }

  forget(id) {
    const entry = this.calls.get(id);
    if (!entry) return;
    clearInterval(entry.timer);
    entry.li.remove();
    this.calls.delete(id);
  }

  destroy() {
    this.client.removeEventListener("message", this.onMessage);
    clearInterval(this.refreshTimer);
    for (const id of [...this.calls.keys()]) this.forget(id);
    this.container.replaceChildren();
  }
}

/** Mount the panel into `container` (which it unhides); null when this page has no counsellor session. */
export async function mountCallPanel(container, client) {
  let directory;
  try {
    directory = await fetchDirectory();
  } catch {
    directory = null;
  }
  if (!directory || (!directory.departments?.length && !directory.languages?.length)) {
    container.hidden = true;
    return null;
  }
  await initI18n();
  ensureStyles();
  const panel = new CallPanel(container, client, directory);
  panel.build();
  container.hidden = false;
  return panel;
}
