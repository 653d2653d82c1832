// An allow-list sanitiser mirroring meetplatform/web/sanitize.py. The server already
// sanitises meeting texts; this is defence in depth (and the CSP forbids inline script).
// tests/web/test_pages.py checks that ALLOWED_TAGS and DROP_WITH_CONTENT match the server's.

const HTML_NS = "http://www.w3.org/1999/xhtml";

const ALLOWED_TAGS = {
  a: ["href", "title"], abbr: ["title"], b: [], blockquote: [], br: [], code: [], del: [],
  div: [], em: [], h1: [], h2: [], h3: [], h4: [], hr: [], i: [], ins: [], li: [], mark: [],
  ol: [], p: [], pre: [], q: [], s: [], small: [], span: [], strong: [], sub: [], sup: [],
  u: [], ul: [],
};
const DROP_WITH_CONTENT = new Set([
  "script", "style", "template", "iframe", "object", "embed", "noscript", "noembed",
  "noframes", "frameset", "frame", "applet", "svg", "math", "textarea", "select", "title",
  "head", "xmp", "plaintext", "video", "audio", "canvas", "form",
]);

function safeLink(value) {
  const url = String(value).replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
  const lower = url.toLowerCase();
  if (!/^(https?:|mailto:)/.test(lower)) return null;
  if (/^https?:/.test(lower) && !/^https?:\/\/./.test(lower)) return null;
  if (/[\x00-\x1f\x7f]/.test(url)) return null;
  return url;
}

export function sanitizedFragment(html) {
  const doc = new DOMParser().parseFromString(String(html ?? ""), "text/html");
  const fragment = document.createDocumentFragment();
  const walk = (source, depth) => {
    const out = [];
    if (depth > 200) return out;
    for (const child of source.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        out.push(document.createTextNode(child.data));
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      const tag = child.localName;
      if (child.namespaceURI !== HTML_NS || DROP_WITH_CONTENT.has(tag)) continue;
      const kids = walk(child, depth + 1);
      const allowed = ALLOWED_TAGS[tag];
      if (!allowed || depth >= 32) {
        out.push(...kids);
        continue;
      }
      const node = document.createElement(tag);
      for (const name of allowed) {
        if (!child.hasAttribute(name)) continue;
        let value = child.getAttribute(name);
        if (name === "href") value = safeLink(value);
        if (value !== null) node.setAttribute(name, value);
      }
      if (tag === "a") {
        if (!node.hasAttribute("href")) {
          out.push(...kids);
          continue;
        }
        node.target = "_blank";
        node.rel = "noopener noreferrer";
      }
      node.append(...kids);
      out.push(node);
    }
    return out;
  };
  fragment.append(...walk(doc.body, 0));
  return fragment;
}
