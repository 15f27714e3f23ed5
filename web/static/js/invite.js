// The invite panel: create a join link for one person (citizen, interpreter or expert), show it
// with a copy button and a QR code, its validity window, and withdraw it again.
//
//   import { mountInvitePanel } from "/static/js/invite.js";
//   const panel = await mountInvitePanel(containerElement, roomId);   // panel.destroy() to remove
//
// Standalone: needs only the container and <meta name="csrf-token"> on the page (the signed-in
// counsellor's session). Talks to the REST API (POST/GET/DELETE /api/v1/rooms/{id}/invites) and to
// POST /console/qr for the QR code as SVG (shown as a data: URL, which the CSP allows for images).
// The link shown, copied and put in the QR code is the invite's short link (/j/XXXX-XXXX-XXXX:
// short enough for an SMS or to read out on the phone) when it has one.
// Its styles are css/invite.css, which every page that shows the panel links (the design system
// has no stylesheet injected by a script).
//
// panel.refreshList() reloads "Offene Einladungen"; the room page calls it when someone is
// admitted, turned away or removed, so a withdrawn invite does not linger there.

import { initI18n, t } from "./i18n.js";
import { request, errorText } from "./staffapi.js";
import { el } from "./dom.js";

const ROLES = ["citizen", "interpreter", "expert"];
// The citizen languages of the e-mail, each named in itself (the same names as the join page's choice).
const MAIL_LANGUAGES = [["de", "Deutsch"], ["en", "English"], ["tr", "Türkçe"], ["ar", "العربية"],
  ["uk", "Українська"], ["ru", "Русский"], ["fa", "فارسی"]];

// <meta name="mail-enabled" content="true">: the server has an SMTP server; otherwise no e-mail field at all.
function mailEnabled() {
  const meta = document.querySelector('meta[name="mail-enabled"]');
  return Boolean(meta && meta.content === "true");
}
let counter = 0;


function formatTime(iso) {
  if (!iso) return "";
  const lang = document.documentElement.lang || "de";
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

class InvitePanel {
  constructor(container, roomId) {
    this.container = container;
    this.roomId = roomId;
    this.room = null;
    this.current = null; // the invite shown in the result area
    this.id = `invite-${++counter}`;
    this.destroyed = false;
  }

  path(suffix = "") {
    return `/api/v1/rooms/${encodeURIComponent(this.roomId)}/invites${suffix}`;
  }

  build() {
    const id = this.id;
    this.nameInput = el("input", {
      id: `${id}-name`, name: "name", type: "text", required: true, maxlength: 64, autocomplete: "off",
      "aria-describedby": `${id}-name-hint`,
    });
    this.roleSelect = el("select", { id: `${id}-role`, name: "role" });
    for (const role of ROLES) {
      this.roleSelect.append(el("option", { value: role, text: t(`invite.role.${role}`) }));
    }
    this.submit = el("button", { type: "submit", class: "button-primary", text: t("invite.create") });
    // E-mail (citizens only, when the server sends mail): the address and the language of the message.
    this.emailInput = el("input", {
      id: `${id}-email`, name: "email", type: "email", maxlength: 254, autocomplete: "off", spellcheck: "false",
      "aria-describedby": `${id}-email-hint`,
    });
    this.languageSelect = el("select", { id: `${id}-language`, name: "language" });
    for (const [code, label] of MAIL_LANGUAGES) {
      this.languageSelect.append(el("option", { value: code, lang: code, text: label }));
    }
    this.mailFields = el("div", { class: "invite-mail", hidden: true },
      el("div", { class: "field" },
        el("label", { for: `${id}-email`, text: t("invite.email") }),
        this.emailInput,
        el("p", { id: `${id}-email-hint`, class: "hint", text: t("invite.email_hint") })),
      el("div", { class: "field" },
        el("label", { for: `${id}-language`, text: t("invite.email_language") }),
        this.languageSelect));
    this.roleSelect.addEventListener("change", () => this.showMailFields());
    this.form = el("form", { class: "invite-form", novalidate: true },
      el("div", { class: "field" },
        el("label", { for: `${id}-name`, text: t("invite.name") }),
        this.nameInput,
        el("p", { id: `${id}-name-hint`, class: "hint", text: t("invite.name_hint") })),
      el("div", { class: "field" },
        el("label", { for: `${id}-role`, text: t("invite.role") }),
        this.roleSelect),
      this.mailFields,
      el("div", { class: "invite-actions" }, this.submit));
    this.showMailFields();
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });

    this.status = el("p", { class: "invite-status message", role: "status", "aria-live": "polite" });

    this.linkInput = el("input", {
      id: `${id}-link`, type: "text", readonly: true, class: "invite-link", spellcheck: "false",
      "aria-describedby": `${id}-send-hint`,
    });
    this.copyButton = el("button", { type: "button", class: "invite-copy", text: t("invite.copy") });
    this.copyButton.addEventListener("click", () => this.copy());
    this.validity = el("p", { class: "invite-validity" });
    this.qrImage = el("img", { class: "invite-qr", alt: t("invite.qr"), width: 136, height: 136 });
    this.qrFigure = el("figure", { class: "invite-qr-figure", hidden: true },
      this.qrImage, el("figcaption", { text: t("invite.qr_hint") }));
    this.withdrawButton = el("button", { type: "button", class: "invite-withdraw button-danger",
      text: t("invite.withdraw") });
    this.withdrawButton.addEventListener("click", () => this.withdraw(this.current && this.current.jti, true));
    this.result = el("div", { class: "invite-result", hidden: true },
      el("label", { for: `${id}-link`, text: t("invite.link") }),
      el("div", { class: "invite-linkrow" }, this.linkInput, this.copyButton),
      el("p", { id: `${id}-send-hint`, class: "hint", text: t("invite.send_hint") }),
      this.validity,
      this.qrFigure,
      this.withdrawButton);

    this.list = el("ul", { class: "invite-list" });
    this.listEmpty = el("p", { class: "hint", text: t("invite.list.empty") });
    const listTitle = el("h3", { id: `${id}-list-title`, text: t("invite.list") });

    this.root = el("section", { class: "invite-panel", "aria-labelledby": `${id}-title` },
      el("h3", { id: `${id}-title`, text: t("invite.heading") }),
      this.form, this.status, this.result,
      el("div", { class: "invite-open", role: "group", "aria-labelledby": `${id}-list-title` },
        listTitle, this.listEmpty, this.list));
    this.container.replaceChildren(this.root);
  }

  showMailFields() {
    this.mailFields.hidden = !(mailEnabled() && this.roleSelect.value === "citizen");
  }

  say(text, kind = "") {
    this.status.textContent = text;
    this.status.className = `invite-status message${kind ? " message-" + kind : ""}`;
  }

  async loadRoom() {
    try {
      this.room = await request("GET", `/api/v1/rooms/${encodeURIComponent(this.roomId)}`);
    } catch {
      this.room = null; // the panel still works; non-citizen links then get the server's default lifetime
    }
  }

  // Links for interpreters and experts are single-use and would otherwise live two minutes (the
  // lifetime of a call); a link sent by mail must last until the appointment ends.
  lifetimeFor(role) {
    if (role === "citizen") return undefined;
    const end = this.room && this.room.scheduled_end ? Date.parse(this.room.scheduled_end) : NaN;
    const seconds = Number.isFinite(end) ? Math.floor((end - Date.now()) / 1000) : 4 * 3600;
    return Math.max(300, seconds);
  }

  async create() {
    const name = this.nameInput.value.trim();
    if (!name || name.length > 64) {
      this.nameInput.setAttribute("aria-invalid", "true");
      this.say(t("invite.error.name"), "error");
      this.nameInput.focus();
      return;
    }
    this.nameInput.removeAttribute("aria-invalid");
    const role = this.roleSelect.value;
    const body = { role, name };
    const lifetime = this.lifetimeFor(role);
    if (lifetime !== undefined) body.lifetime_seconds = lifetime;
    const email = this.mailFields.hidden ? "" : this.emailInput.value.trim();
    if (email) {
      if (!this.emailInput.checkValidity()) {
        this.emailInput.setAttribute("aria-invalid", "true");
        this.say(t("invite.error.email"), "error");
        this.emailInput.focus();
        return;
      }
      body.email = email;
      body.language = this.languageSelect.value;
    }
    this.emailInput.removeAttribute("aria-invalid");
    this.submit.disabled = true;
    this.say(t("invite.creating"));
    try {
      const invite = await request("POST", this.path(), { body });
      await this.show(invite, name);
      this.say(email ? t("invite.emailed", { email }) : t("invite.created"), "ok");
      this.nameInput.value = "";
      this.emailInput.value = "";
      this.linkInput.focus();
      this.linkInput.select();
    } catch (err) {
      this.say(errorText(err), "error");
      if (err && err.code === "invalid_email") {
        this.emailInput.setAttribute("aria-invalid", "true");
        this.emailInput.focus();
      }
    } finally {
      this.submit.disabled = false;
      this.refreshList();
    }
  }

  async show(invite, name) {
    this.current = invite;
    const link = invite.short_url || invite.join_url;
    this.linkInput.value = link;
    this.linkInput.disabled = false;
    this.copyButton.disabled = false;
    this.withdrawButton.disabled = false;
    const parts = [t("invite.valid", { from: formatTime(invite.not_before), until: formatTime(invite.expires_at) })];
    if (invite.single_use) parts.push(t("invite.single_use"));
    this.validity.textContent = `${t("invite.for", { name, role: t(`invite.role.${invite.role}`) })} ${parts.join(" ")}`;
    this.result.hidden = false;
    this.qrFigure.hidden = true;
    try {
      const response = await request("POST", "/console/qr", { body: { text: link }, raw: true });
      const svg = await response.text();
      this.qrImage.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
      this.qrFigure.hidden = false;
    } catch {
      this.say(t("invite.qr_failed"), "error");
    }
  }

  async copy() {
    const text = this.linkInput.value;
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      this.say(t("invite.copied"), "ok");
    } catch {
      this.linkInput.focus();
      this.linkInput.select();
      let copied = false;
      try {
        copied = document.execCommand("copy");
      } catch {
        copied = false;
      }
      this.say(copied ? t("invite.copied") : t("invite.copy_fallback"), copied ? "ok" : "");
    }
  }

  async withdraw(jti, fromResult = false) {
    if (!jti) return;
    try {
      await request("DELETE", this.path(`/${encodeURIComponent(jti)}`));
      this.say(t("invite.withdrawn"), "ok");
    } catch (err) {
      if (err.code !== "token_revoked") {
        this.say(errorText(err), "error");
        return;
      }
      this.say(t("invite.withdrawn"), "ok");
    }
    if (this.current && this.current.jti === jti) {
      this.linkInput.value = "";
      this.linkInput.disabled = true;
      this.copyButton.disabled = true;
      this.withdrawButton.disabled = true;
      this.qrFigure.hidden = true;
      this.qrImage.removeAttribute("src");
      this.validity.textContent = t("invite.withdrawn");
      this.current = null;
    }
    await this.refreshList();
    if (fromResult) this.nameInput.focus();
  }

  async refreshList() {
    let invites = [];
    try {
      invites = (await request("GET", this.path())).invites || [];
    } catch {
      return; // the list is a convenience; the rest of the panel goes on
    }
    if (this.destroyed) return;
    const now = Date.now();
    const open = invites.filter((inv) => ROLES.includes(inv.role) && !inv.revoked_at
      && Date.parse(inv.expires_at) > now && !(inv.single_use && inv.used_at));
    const items = open.map((inv) => {
      const button = el("button", {
        type: "button", class: "button-quiet",
        text: t("invite.withdraw"),
        "aria-label": `${t("invite.withdraw")}: ${inv.label}`,
      });
      button.addEventListener("click", () => this.withdraw(inv.jti));
      return el("li", { "data-jti": inv.jti },
        el("span", {
          text: t("invite.list.item", {
            name: inv.label, role: t(`invite.role.${inv.role}`), until: formatTime(inv.expires_at),
          }),
        }),
        button);
    });
    this.list.replaceChildren(...items);
    this.listEmpty.hidden = items.length > 0;
  }

  destroy() {
    this.destroyed = true;
    this.container.replaceChildren();
  }
}

/**
 * Mount the invite panel for `roomId` into `container` (its content is replaced).
 * Resolves with the panel; `panel.destroy()` empties the container again.
 */
export async function mountInvitePanel(container, roomId) {
  if (!container || !roomId) throw new Error("mountInvitePanel(container, roomId): both are required");
  await initI18n();
  const panel = new InvitePanel(container, String(roomId));
  panel.build();
  await panel.loadRoom();
  await panel.refreshList();
  return panel;
}
