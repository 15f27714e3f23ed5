// A network that lets the signalling through (often through an HTTP proxy) but no media:
// tell the person plainly what to ask their IT department to open, naming our TURN server.
//
// A connection counts as blocked when it failed, or when its candidate gathering ended
// without a relay candidate although TURN servers were offered and it did not connect
// within WAIT_AFTER_GATHERING_MS. The advice disappears once any connection is up.
//
// room.js hooks it in with one call: watchNetwork(mesh); the join page shows adviceBox()
// when its network check could not connect at all.

import { t } from "./i18n.js";

const WAIT_AFTER_GATHERING_MS = 15000;
const TURN_URL = /^(turns?):(\[[0-9a-fA-F:.]+\]|[^:?\s]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/i;

/** What to ask IT for, from the ICE servers of `welcome`: TURN over TLS first, then TURN, else plain UDP. */
export function adviceRules(iceServers) {
  const rules = [];
  const seen = new Set();
  for (const server of Array.isArray(iceServers) ? iceServers : []) {
    const urls = Array.isArray(server && server.urls) ? server.urls : [server && server.urls];
    for (const url of urls) {
      const match = typeof url === "string" ? TURN_URL.exec(url.trim()) : null;
      if (!match) continue;
      const tls = match[1].toLowerCase() === "turns";
      const rule = { key: tls ? "room.network.rule_tls" : "room.network.rule_turn", host: match[2],
        port: match[3] || (tls ? "5349" : "3478") };
      const id = `${rule.key} ${rule.host} ${rule.port}`;
      if (!seen.has(id)) {
        seen.add(id);
        rules.push(rule);
      }
    }
  }
  rules.sort((a, b) => (a.key === b.key ? 0 : a.key === "room.network.rule_tls" ? -1 : 1));
  return rules.length ? rules : [{ key: "room.network.rule_udp" }];
}

/** The advice as a section (#network-advice, an alert): title, explanation, what to open. */
export function adviceBox(iceServers) {
  const box = document.createElement("section");
  box.id = "network-advice";
  box.className = "network-advice";
  box.setAttribute("role", "alert");
  const title = document.createElement("h2");
  title.textContent = t("room.network.title");
  const text = document.createElement("p");
  text.textContent = t("room.network.text");
  const list = document.createElement("ul");
  for (const rule of adviceRules(iceServers)) {
    const item = document.createElement("li");
    item.textContent = t(rule.key, { host: rule.host, port: rule.port });
    item.dataset.rule = rule.key.split(".").pop();
    list.append(item);
  }
  box.append(title, text, list);
  return box;
}

export function watchNetwork(mesh) {
  const timers = new Map();
  const blocked = new Set();

  function hasTurn() {
    return adviceRules(mesh.iceServers).some((r) => r.key !== "room.network.rule_udp");
  }

  function update() {
    const anyConnected = [...mesh.links.values()].some((l) => l.pc && l.pc.connectionState === "connected");
    const box = document.getElementById("network-advice");
    if (!blocked.size || anyConnected) {
      box?.remove();
      return;
    }
    if (box) return;
    const tiles = document.getElementById("tiles");
    if (tiles) tiles.before(adviceBox(mesh.iceServers));
    else document.body.append(adviceBox(mesh.iceServers));
  }

  mesh.addEventListener("connection", (e) => {
    const { peerId, state } = e.detail;
    const link = mesh.links.get(peerId);
    if (state === "connected" || state === "new") {
      blocked.delete(peerId);
      clearTimeout(timers.get(peerId));
    } else if (state === "failed" && link && !link.relayGathered) {
      blocked.add(peerId);
    }
    update();
  });
  mesh.addEventListener("gathered", (e) => {
    const { peerId, relay } = e.detail;
    clearTimeout(timers.get(peerId));
    if (relay || !hasTurn()) return;
    timers.set(peerId, setTimeout(() => {
      const link = mesh.links.get(peerId);
      if (link && link.pc && link.pc.connectionState !== "connected") {
        blocked.add(peerId);
        update();
      }
    }, WAIT_AFTER_GATHERING_MS));
  });
  mesh.addEventListener("link-closed", (e) => {
    blocked.delete(e.detail.peerId);
    clearTimeout(timers.get(e.detail.peerId));
    update();
  });
}
