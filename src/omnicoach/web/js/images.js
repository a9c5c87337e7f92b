// Images in the chat: picking them (file picker, paste, drag and drop), shrinking them before
// they are sent, the content parts a message with an image becomes, and the thumbnails of
// stored images (fetched with the page's key, shown as blob: URLs, revoked when the chat is left).

import { el, icon } from "./dom.js";

/** Longest side, in pixels, of an image the page sends; larger ones are scaled down. */
export const MAX_SIDE = 1024;
const JPEG_QUALITY = 0.9;
// Small enough images in these formats are sent byte for byte; every other one is redrawn.
const SENT_AS_IS = ["image/jpeg", "image/png", "image/webp"];
const SENT_AS_IS_MAX_BYTES = 1_500_000;

/** A problem with a file the user gave, in words for the user. */
export class ImageError extends Error {
  constructor(message) {
    super(message);
    this.name = "ImageError";
  }
}

export function isImage(file) {
  return Boolean(file && file.type && file.type.startsWith("image/"));
}

/** Whether a drag carries files (not text or a link dragged from another page). */
export function carriesFiles(dataTransfer) {
  return Boolean(dataTransfer && [...dataTransfer.types].includes("Files"));
}

/** The files in a drop or a paste (some sources list them only as items). */
export function filesIn(dataTransfer) {
  if (!dataTransfer) return [];
  const files = [...(dataTransfer.files || [])];
  if (files.length) return files;
  return [...(dataTransfer.items || [])]
    .filter((item) => item.kind === "file")
    .map((item) => item.getAsFile())
    .filter(Boolean);
}

/**
 * A file as an image ready to send: {url: a data: URL, type, width, height, name}. Images
 * larger than MAX_SIDE on their long side are scaled down (aspect kept) and re-encoded: JPEG,
 * or PNG when the image has transparent pixels. Rejects with ImageError.
 */
export async function prepareImage(file) {
  if (!isImage(file)) throw new ImageError(`“${file.name}” is not an image.`);
  const source = URL.createObjectURL(file);
  try {
    const image = new Image();
    image.src = source;
    try {
      await image.decode();
    } catch {
      throw new ImageError(`“${file.name}” could not be read as an image.`);
    }
    const { naturalWidth: width, naturalHeight: height } = image;
    if (!width || !height) throw new ImageError(`“${file.name}” has no size to show.`);
    const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    const name = file.name || "image";
    if (scale === 1 && SENT_AS_IS.includes(file.type) && file.size <= SENT_AS_IS_MAX_BYTES) {
      return { url: await readAsDataUrl(file), type: file.type, width, height, name };
    }
    const size = { width: Math.max(1, Math.round(width * scale)), height: 0 };
    size.height = Math.max(1, Math.round(height * scale));
    const canvas = el("canvas", { width: size.width, height: size.height });
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = "high";
    context.drawImage(image, 0, 0, size.width, size.height);
    const type =
      file.type !== "image/jpeg" && hasTransparency(context, size) ? "image/png" : "image/jpeg";
    const url = canvas.toDataURL(type, JPEG_QUALITY);
    return { url, type, ...size, name };
  } finally {
    URL.revokeObjectURL(source);
  }
}

function hasTransparency(context, { width, height }) {
  const pixels = context.getImageData(0, 0, width, height).data;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) {
    if (pixels[alpha] < 255) return true;
  }
  return false;
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new ImageError(`“${file.name}” could not be read.`));
    reader.readAsDataURL(file);
  });
}

/**
 * A user message's content, as OpenAI's chat API takes it: the text alone when there is no
 * image, else content parts: the text (left out when empty), then each image as a data: URL.
 */
export function messageContent(text, imageUrls) {
  if (!imageUrls.length) return text;
  const parts = text.trim() ? [{ type: "text", text }] : [];
  for (const url of imageUrls) parts.push({ type: "image_url", image_url: { url } });
  return parts;
}

/** The text of a message's content: a string, or the text parts of a content-parts array. */
export function contentText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((part) => part && part.type === "text" && typeof part.text === "string")
    .map((part) => part.text)
    .join("\n");
}

/**
 * The stored images of the open conversation, by file id: fetched once each with the page's
 * key (an <img src> could not send it) and shown from blob: URLs, which reset() revokes.
 */
export class StoredImages {
  /** fetchImage(id, {signal}) resolves to the image's Blob. */
  constructor(fetchImage) {
    this.fetchImage = fetchImage;
    this.entries = new Map(); // id → {status: "loading" | "ready" | "failed", url}
    this.controller = new AbortController();
  }

  /** Forget every image: revoke their blob: URLs and stop the fetches under way. */
  reset() {
    this.controller.abort();
    for (const entry of this.entries.values()) {
      if (entry.url && entry.url.startsWith("blob:")) URL.revokeObjectURL(entry.url);
    }
    this.entries = new Map();
    this.controller = new AbortController();
  }

  /** Show `url` (what the page sent, a data: URL) for stored image `id`: no fetch needed. */
  remember(id, url) {
    if (!this.entries.has(id)) this.entries.set(id, { status: "ready", url });
  }

  /** Image `id`'s entry; the first call starts its fetch, and onSettled(id, entry) runs once
   *  that has ended (not after a reset). */
  get(id, onSettled) {
    let entry = this.entries.get(id);
    if (entry) return entry;
    entry = { status: "loading", url: null };
    this.entries.set(id, entry);
    const { signal } = this.controller;
    this.fetchImage(id, { signal })
      .then((blob) => {
        if (signal.aborted) return;
        if (!isImage(blob)) throw new ImageError("not an image");
        entry.url = URL.createObjectURL(blob);
        entry.status = "ready";
      })
      .catch(() => {
        if (!signal.aborted) entry.status = "failed";
      })
      .finally(() => {
        if (!signal.aborted) onSettled(id, entry);
      });
    return entry;
  }
}

/**
 * A thumbnail that opens the image larger: image is {url} (ready to show) or {id, entry} (a
 * stored image, perhaps still loading). `label` names it for screen readers.
 */
export function thumbnail(image, label, onOpen) {
  const img = el("img", { alt: "", decoding: "async", draggable: "false" });
  const button = el("button", { type: "button", class: "thumb" }, img);
  button.addEventListener("click", () => {
    if (img.getAttribute("src")) onOpen(img.getAttribute("src"), button);
  });
  if (image.id) button.dataset.fileId = image.id;
  showThumbnail(button, image.entry || { status: "ready", url: image.url }, label);
  return button;
}

/** Bring a thumbnail up to date with its stored image's entry (loaded, or failed). */
export function showThumbnail(button, entry, label = button.dataset.label) {
  const img = button.querySelector("img");
  button.dataset.label = label;
  button.classList.toggle("loading", entry.status === "loading");
  button.classList.toggle("failed", entry.status === "failed");
  button.disabled = entry.status !== "ready";
  if (entry.status === "ready") {
    img.src = entry.url;
    button.setAttribute("aria-label", `${label}: open it larger`);
    button.title = "Open the image larger";
    button.replaceChildren(img);
  } else if (entry.status === "loading") {
    button.setAttribute("aria-label", `${label}: loading`);
    button.title = "Loading the image…";
  } else {
    button.setAttribute("aria-label", `${label}: could not be loaded`);
    button.title = "The image could not be loaded";
    button.replaceChildren(img, icon("image-off"));
  }
}
