// Answers are Markdown: marked turns them into HTML, DOMPurify cleans that HTML, and only then
// does it reach the page. This runs on every update while an answer streams, so a half-written
// tag is never trusted either.

import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import { icon } from "./dom.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const marked = new Marked({
  gfm: true,
  renderer: {
    // Raw HTML in an answer is shown as the text it is, as chat apps do: a model that writes
    // <img src=x onerror=…> (or is tricked into it) gets those characters displayed, not parsed.
    html({ text }) {
      return escapeHtml(text);
    },
    // An image would be a request to wherever the model points; offer a link instead.
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

// Links open in a new tab and tell the target nothing about this page.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const PURIFY = {
  USE_PROFILES: { html: true }, // no SVG or MathML
  FORBID_TAGS: ["style", "img", "form", "button", "textarea", "select"],
  FORBID_ATTR: ["style", "id", "name"], // no inline styles (the CSP refuses them anyway)
  RETURN_DOM_FRAGMENT: true,
};

/** Render Markdown text into `target`, replacing what it held. */
export function renderMarkdown(target, text) {
  const fragment = DOMPurify.sanitize(marked.parse(text), PURIFY);
  for (const pre of fragment.querySelectorAll("pre")) wrapCodeBlock(pre);
  for (const table of fragment.querySelectorAll("table")) {
    const wrap = document.createElement("div");
    wrap.className = "table-wrap"; // scrolls sideways on narrow screens
    table.replaceWith(wrap);
    wrap.append(table);
  }
  target.replaceChildren(fragment);
}

// Code blocks get a header with their language and a copy button, as in ChatGPT.
function wrapCodeBlock(pre) {
  const code = pre.querySelector("code");
  const language = ((code && code.className.match(/language-([\w+#.-]+)/)) || [])[1] || "code";
  const block = document.createElement("div");
  block.className = "code-block";
  const head = document.createElement("div");
  head.className = "code-head";
  const label = document.createElement("span");
  label.textContent = language;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "code-copy";
  copy.setAttribute("aria-label", `Copy ${language} code`);
  copy.append(icon("copy"), document.createTextNode("Copy"));
  head.append(label, copy);
  pre.replaceWith(block);
  block.append(head, pre);
}
