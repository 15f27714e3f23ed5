// The chat log and its form (the messages themselves travel in chat.js, never through the server).
//
// Every name and message is text, never markup, and isolated for direction: a German sentence
// in an Arabic page keeps its question mark at its end, an Arabic message in a German page reads
// right to left, and a name never drags the words around it along (<bdi>, dir="auto").

import { el } from "./dom.js";
import { t } from "./i18n.js";

export class ChatView {
  constructor(log, form, input) {
    this.log = log;
    this.form = form;
    this.input = input;
  }

  onSubmit(handler) {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      if (handler(text) !== false) this.input.value = "";
    });
  }

  /** Append a message ({from, text, own}) or a notice ({notice: true, text}) of the room. */
  append({ from, text, own = false, notice = false }) {
    const lang = document.documentElement.lang || "de";
    const time = new Date().toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    const item = el("p", { class: `chat-message${own ? " own" : ""}${notice ? " notice" : ""}` });
    if (notice) {
      item.append(el("span", { dir: "auto", text }));
    } else {
      item.append(el("bdi", { class: "chat-from", text: own ? t("room.chat.me") : from }),
        el("span", { class: "visually-hidden", text: ": " }),
        el("span", { class: "chat-time", text: time }),
        el("span", { class: "chat-text", dir: "auto", text }));
    }
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
  }

  setReach(open) {
    this.input.placeholder = open ? "" : t("room.chat.nobody");
  }
}
