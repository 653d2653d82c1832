// Translations: t(key, params) from the message catalogues in static/i18n/<lang>.json,
// the same files the server renders its pages with (meetplatform/web/i18n.py).
//
// The language is the first of: the seat's userdata-bbb_override_default_locale, the
// embedding site's `lang` option, the browser's languages (navigator.languages), English.
// The catalogues there are come from the page (<meta name="mp-languages">), and each
// catalogue's _meta says its direction, so <html dir> follows the data (rtl for Arabic).
// English is always loaded as the fallback for a key another catalogue lacks.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

let messages = {};
let fallback = {};
export const i18n = { locale: "en", dir: "ltr" };

export function languages() {
  const listed = meta("mp-languages").split(/\s+/).filter(Boolean);
  return listed.length ? listed : ["en"];
}

// The catalogue for a language tag: exact (case-insensitive, _ or -), then the primary
// subtag ("pt" or "pt-PT" -> "pt-BR", "en-US" -> "en").
export function matchLanguage(tag, known = languages()) {
  if (!tag || typeof tag !== "string") return null;
  const wanted = tag.trim().replace(/_/g, "-").toLowerCase();
  if (!wanted) return null;
  const exact = known.find((lang) => lang.toLowerCase() === wanted);
  if (exact) return exact;
  const primary = wanted.split("-")[0];
  return known.find((lang) => lang.toLowerCase() === primary)
    ?? known.find((lang) => lang.toLowerCase().split("-")[0] === primary) ?? null;
}

export function chooseLanguage(...preferred) {
  const candidates = [...preferred, ...(navigator.languages ?? [navigator.language])];
  for (const tag of candidates) {
    const found = matchLanguage(tag);
    if (found) return found;
  }
  return "en";
}

async function fetchCatalogue(lang) {
  const base = meta("mp-static-url") || "/static";
  const response = await fetch(`${base}/i18n/${encodeURIComponent(lang)}.json`, { cache: "no-cache" });
  if (!response.ok) throw new Error(`catalogue ${lang}: HTTP ${response.status}`);
  return response.json();
}

// Load the language (and English), set <html lang dir>, translate the marked DOM.
export async function setLanguage(lang) {
  try {
    fallback = await fetchCatalogue("en");
    const data = lang === "en" ? fallback : await fetchCatalogue(lang);
    messages = data;
    i18n.locale = lang;
    i18n.dir = data._meta?.dir === "rtl" ? "rtl" : "ltr";
  } catch (err) {
    console.warn("[meetplatform] cannot load the translations", err);
    messages = fallback;
    i18n.locale = "en";
    i18n.dir = "ltr";
  }
  document.documentElement.lang = i18n.locale;
  document.documentElement.dir = i18n.dir;
  translateDom(document);
  return i18n.locale;
}

export function t(key, params = {}) {
  const template = messages[key] ?? fallback[key] ?? key;
  return String(template).replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole);
}

const ATTRIBUTES = { i18nLabel: "aria-label", i18nPlaceholder: "placeholder", i18nTitle: "title" };

// Elements marked data-i18n get their text; data-i18n-label / -placeholder / -title their
// attribute (the server already did this for its own language choice).
export function translateDom(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    if (!node.children.length) node.textContent = t(node.dataset.i18n);
  }
  for (const [data, attribute] of Object.entries(ATTRIBUTES)) {
    const selector = `[data-${data.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const node of root.querySelectorAll(selector)) node.setAttribute(attribute, t(node.dataset[data]));
  }
}

// Times in the participant's language (Intl), e.g. chat message times.
export function formatTime(ms) {
  try {
    return new Intl.DateTimeFormat(i18n.locale, { hour: "2-digit", minute: "2-digit" }).format(new Date(ms));
  } catch {
    return new Date(ms).toLocaleTimeString();
  }
}
