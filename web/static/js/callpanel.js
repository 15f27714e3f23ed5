// The counsellor's call panel in the room page: switch in an expert of an office or an interpreter.
//
//   import { mountCallPanel } from "/static/js/callpanel.js";
//   const panel = await mountCallPanel(containerElement, client);   // null when not available
//
// `client` is the room page's SignallingClient (signalling.js): `send(message)` and the
// "message" event carrying every server message. The panel sends `call`, `call-cancel` and
// `callback` (docs/protocol.md) and shows the `call-status` replies. A call's box follows the
// call and goes away when there is nothing left to do: ringing (countdown, cancel), accepted
// and on the way in, in the room (then the box goes: the tile says the rest), left (the expert
// may come back from the desk), released; nobody answered: call again, call another office,
// leave a callback request, or close the box. A new call clears finished boxes.
// The list of offices and languages comes from GET /desk/directory (without the counsellor's
// own office), which needs a signed-in counsellor's session: without one (a room entered by a
// link only) the panel stays empty and mountCallPanel resolves to null. Nothing is chosen
// beforehand: calling the wrong office is worse than one more key press.
// Its styles are css/callpanel.css, linked by the room page.

import { el } from "./dom.js";
import { initI18n, t, tn } from "./i18n.js";

const REFRESH_MS = 20000;
const REFS = new Set(["call", "call-cancel", "callback"]);
const GONE_AFTER_MS = { in_room: 8000, cancelled: 8000, left: 30000, error: 15000 };
let counter = 0;

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
    this.calls = new Map(); // call id -> {call, li, timer, gone}
    this.onMessage = (e) => this.message(e.detail);
    this.refreshTimer = null;
  }

  build() {
    const id = this.id;
    this.select = el("select", { id: `${id}-target`, name: "target", "data-autofocus": "",
      "aria-describedby": `${id}-hint` });
    this.select.addEventListener("focus", () => this.refresh()); // fresh counts when choosing
    this.fillSelect();
    this.callButton = el("button", { type: "button", class: "button-primary call-start", text: t("call.start") });
    this.callButton.addEventListener("click", () => this.call(this.select.value));
    this.hint = el("p", { id: `${id}-hint`, class: "hint", text: t("call.hint") });
    this.list = el("ul", { class: "call-list", "aria-labelledby": `${id}-title` });
    this.live = el("p", { class: "call-live visually-hidden", role: "status", "aria-live": "polite" });
    this.container.replaceChildren(
      el("h3", { id: `${id}-title`, text: t("call.title") }),
      el("div", { class: "call-form" },
        el("div", { class: "field" }, el("label", { for: `${id}-target`, text: t("call.target") }), this.select, this.hint),
        this.callButton),
      this.list, this.live);
    this.container.classList.add("call-panel");
    this.client.addEventListener("message", this.onMessage);
    this.refreshTimer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  options() {
    return [
      ["", t("call.placeholder")],
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
    this.select.replaceChildren(el("option", { value: "", text: t("call.placeholder") }));
    const depts = el("optgroup", { label: t("call.group.departments") });
    for (const d of this.directory.departments || []) {
      depts.append(el("option", { value: `department:${d.id}`, text: t("call.option", { name: d.name, count: d.available }) }));
    }
    const langs = el("optgroup", { label: t("call.group.languages") });
    for (const l of this.directory.languages || []) {
      langs.append(el("option", { value: `language:${l.code}`, text: t("call.option_language", { name: l.label, count: l.available }) }));
    }
    if (depts.children.length) this.select.append(depts);
    if (langs.children.length) this.select.append(langs);
    this.select.value = chosen || "";
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
    if (!value) {
      this.say(t("call.choose_first"));
      this.showError(t("call.choose_first"));
      this.select.focus();
      return;
    }
    const [kind, target] = value.split(/:(.*)/s);
    const message = kind === "language" ? { type: "call", language: target } : { type: "call", department: target };
    for (const [id, entry] of [...this.calls]) if (entry.call.state !== "ringing" && entry.call.state !== "accepted") this.forget(id);
    for (const box of this.list.querySelectorAll(".call-error")) box.remove();
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
    setTimeout(() => li.remove(), GONE_AFTER_MS.error);
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

  /** The phase a box shows: the call's state, or for an accepted call where its expert is. */
  static phase(call) {
    return call.state === "accepted" ? call.presence || "joining" : call.state;
  }

  status(call) {
    let entry = this.calls.get(call.id);
    const phase = CallPanel.phase(call);
    if (!entry) {
      if (phase === "released") return; // nothing to show for a call that is over
      entry = { call, li: el("li", { class: "call-status", "data-call": call.id }), timer: null, gone: null, announced: false };
      this.calls.set(call.id, entry);
      this.list.prepend(entry.li);
    }
    const before = CallPanel.phase(entry.call);
    entry.call = call;
    entry.value = `${call.kind}:${call.target}`;
    clearInterval(entry.timer);
    clearTimeout(entry.gone);
    entry.timer = null;
    entry.li.dataset.state = phase;
    const target = call.target_label || call.target;
    const name = call.accepted_by || t("call.someone");
    const body = [];
    let announce = null;
    if (phase === "ringing") {
      const countdown = el("span", { class: "call-countdown" });
      const tick = () => {
        const left = Math.max(0, Math.round(call.expires_at - Date.now() / 1000));
        countdown.textContent = t("call.countdown", { seconds: left });
      };
      tick();
      entry.timer = setInterval(tick, 1000);
      const cancel = el("button", { type: "button", class: "button-small call-cancel", text: t("call.cancel") });
      cancel.addEventListener("click", () => {
        cancel.disabled = true;
        if (!this.client.send({ type: "call-cancel", call: call.id })) cancel.disabled = false;
      });
      const ringing = tn("call.ringing", call.ringing, { target });
      body.push(el("p", { text: ringing }), el("p", {}, countdown), el("div", { class: "call-actions" }, cancel));
      if (before !== "ringing" || !entry.announced) announce = ringing;
      entry.announced = true;
    } else if (phase === "joining") {
      body.push(el("p", { text: t("call.accepted", { name }) }));
    } else if (phase === "in_room") {
      body.push(el("p", { text: t("call.joined", { name }) }));
    } else if (phase === "left") {
      body.push(el("p", { text: t("call.left", { name }) }));
    } else if (phase === "released") {
      this.forget(call.id);
      return;
    } else if (phase === "cancelled") {
      body.push(el("p", { text: t("call.cancelled", { target }) }));
    } else {
      // timed_out, no_one: nobody took it
      const again = el("button", { type: "button", class: "button-small call-again", text: t("call.again") });
      const other = el("button", { type: "button", class: "button-small call-other", text: t("call.other") });
      const callback = el("button", { type: "button", class: "button-small call-callback", text: t("call.callback") });
      const dismiss = el("button", { type: "button", class: "button-small button-quiet call-dismiss", text: t("call.dismiss") });
      again.addEventListener("click", () => { this.forget(call.id); this.call(entry.value); });
      other.addEventListener("click", () => { this.forget(call.id); this.select.focus(); });
      dismiss.addEventListener("click", () => this.forget(call.id));
      callback.addEventListener("click", () => {
        if (this.client.send({ type: "callback", call: call.id })) {
          callback.disabled = true;
          const done = t("call.callback_sent", { target });
          entry.li.append(el("p", { class: "call-callback-sent", text: done }));
          this.say(done);
        }
      });
      body.push(el("p", { class: "call-nobody", text: t("call.nobody") }),
        el("p", { text: t(phase === "no_one" ? "call.no_one" : "call.timed_out", { target }) }),
        el("div", { class: "call-actions" }, again, other, callback, dismiss));
      announce = `${t("call.nobody")} ${body[1].textContent}`;
    }
    if (phase !== "ringing" && phase !== before && !announce) announce = body[0]?.textContent || null;
    entry.li.replaceChildren(...body);
    if (announce) this.say(announce);
    if (GONE_AFTER_MS[phase]) entry.gone = setTimeout(() => this.forget(call.id), GONE_AFTER_MS[phase]);
    if (phase !== "ringing") this.refresh(); // who is available has changed
  }

  forget(id) {
    const entry = this.calls.get(id);
    if (!entry) return;
    clearInterval(entry.timer);
    clearTimeout(entry.gone);
    const hadFocus = entry.li.contains(document.activeElement);
    entry.li.remove();
    this.calls.delete(id);
    if (hadFocus) this.select.focus();
  }

  destroy() {
    this.client.removeEventListener("message", this.onMessage);
    clearInterval(this.refreshTimer);
    for (const id of [...this.calls.keys()]) this.forget(id);
    this.container.replaceChildren();
  }
}

/** Mount the panel into `container`; null when this page has no counsellor session. */
export async function mountCallPanel(container, client) {
  let directory;
  try {
    directory = await fetchDirectory();
  } catch {
    directory = null;
  }
  if (!directory || (!directory.departments?.length && !directory.languages?.length)) return null;
  await initI18n();
  const panel = new CallPanel(container, client, directory);
  panel.build();
  return panel;
}
