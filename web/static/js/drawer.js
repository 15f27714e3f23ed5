// The room's one side drawer: people and waiting room, calling an expert, invites, chat.
//
// A control-bar button opens its pane (aria-expanded, aria-controls); the same button, the
// close button or Escape closes it and gives the focus back to that button. Opening moves the
// focus to where the person wants to be: the chat's input, the pane's first field, or its
// heading. The stage only gets narrower (a sheet below it on a phone): the videos stay in view.

export class Drawer extends EventTarget {
  /**
   * @param {HTMLElement} root  the <aside id="drawer">
   * @param {HTMLElement} call  the call screen (its data-drawer says open or closed, for the layout)
   */
  constructor(root, call) {
    super();
    this.root = root;
    this.call = call;
    this.title = root.querySelector("#drawer-title");
    this.current = null;
    this.opener = null;
    this.buttons = [...document.querySelectorAll("[data-pane][aria-controls='drawer']")];
    for (const button of this.buttons) {
      button.addEventListener("click", () => this.toggle(button.dataset.pane, button));
    }
    root.querySelector("#drawer-close").addEventListener("click", () => this.close());
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented) {
        event.preventDefault();
        this.close();
      }
    });
  }

  pane(name) {
    return this.root.querySelector(`#pane-${name}`);
  }

  isOpen(name = null) {
    return this.current !== null && (name === null || this.current === name);
  }

  toggle(name, opener = null) {
    if (this.current === name) this.close();
    else this.open(name, { opener });
  }

  /** Open pane `name`; `focus`: "auto" (input or heading), "heading", or false (leave the focus). */
  open(name, { opener = null, focus = "auto" } = {}) {
    const pane = this.pane(name);
    if (!pane) return;
    for (const each of this.root.querySelectorAll(".pane")) each.hidden = each !== pane;
    this.title.textContent = pane.dataset.title || "";
    this.root.setAttribute("aria-labelledby", "drawer-title");
    this.root.hidden = false;
    this.call.dataset.drawer = "open";
    this.current = name;
    this.opener = opener || this.buttons.find((b) => b.dataset.pane === name) || null;
    for (const button of this.buttons) {
      button.setAttribute("aria-expanded", button.dataset.pane === name ? "true" : "false");
    }
    if (focus) {
      const target = focus === "auto" ? pane.querySelector("[data-autofocus]:not([disabled])") : null;
      (target || this.title).focus({ preventScroll: true });
    }
    this.dispatchEvent(new CustomEvent("change", { detail: { pane: name } }));
  }

  close({ restoreFocus = true } = {}) {
    if (this.current === null) return;
    const opener = this.opener;
    this.root.hidden = true;
    this.call.dataset.drawer = "closed";
    this.current = null;
    this.opener = null;
    for (const button of this.buttons) button.setAttribute("aria-expanded", "false");
    if (restoreFocus && opener && opener.isConnected && !opener.hidden) opener.focus({ preventScroll: true });
    this.dispatchEvent(new CustomEvent("change", { detail: { pane: null } }));
  }
}
