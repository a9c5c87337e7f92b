// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing the
// server or the user typed is parsed as markup; only markdown.js builds HTML, and sanitises it.

const SVG = "http://www.w3.org/2000/svg";

/** An icon from the sprite in index.html, hidden from screen readers (buttons carry labels). */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

/** el("button", {class: "x", "aria-label": "Copy", onclick: f}, child, "text", …) */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** An icon-only button: its label is what screen readers announce, and the tooltip. */
export function iconButton(name, label, onclick, className = "icon-button") {
  return el(
    "button",
    { type: "button", class: className, "aria-label": label, title: label, onclick },
    icon(name),
  );
}

/** Copy text to the clipboard; works on plain http too (LAN use), where the Clipboard API
 *  is missing because the page is not a secure context. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused: fall through to the old way.
    }
  }
  const area = el("textarea", { class: "visually-hidden", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  return copied;
}
