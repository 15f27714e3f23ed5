// One translation mechanism for the browser: the same catalogs as the server's templates
// (web/static/i18n/<lang>.json). The page's <html lang> decides the language; German is the
// fallback for a missing key (a test reports every missing key).

const cache = new Map();

async function load(lang) {
  if (!cache.has(lang)) {
    cache.set(lang, fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : {}))
      .catch(() => ({})));
  }
  return cache.get(lang);
}

let current = {};
let fallback = {};

/** Load the catalogs for the page's language; call once before rendering text. */
export async function initI18n(lang = document.documentElement.lang || "de") {
  [current, fallback] = await Promise.all([load(lang), load("de")]);
}

/** The text for `key`, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = current[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
}
