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
let numbers = new Intl.NumberFormat("de", { useGrouping: false });

/** Load the catalogs for the page's language; call once before rendering text. */
export async function initI18n(lang = document.documentElement.lang || "de") {
  [current, fallback] = await Promise.all([load(lang), load("de")]);
  numbers = new Intl.NumberFormat(lang, { useGrouping: false });
}

/** A value for a placeholder: whole numbers in the language's digits (Persian ones for fa), like the server's. */
function show(value) {
  return Number.isInteger(value) ? numbers.format(value) : String(value);
}

/** The text for `key`, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = current[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? show(values[name]) : m));
}

/** The text for `count` of something: `key.one`, `key.few`, … as the language's plural rules say, else `key.other`. */
export function tn(key, count, values = {}) {
  let category = "other";
  try {
    category = new Intl.PluralRules(document.documentElement.lang || "de").select(count);
  } catch {
    /* no plural rules: "other" */
  }
  const chosen = `${key}.${category}`;
  const text = t(chosen, { count, ...values });
  return text === chosen ? t(`${key}.other`, { count, ...values }) : text;
}
