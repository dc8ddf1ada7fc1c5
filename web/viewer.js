// The viewer: a modal <dialog> with the photo and its metadata. ←/→ move through the results
// (loading the next page at the end), Esc closes (the dialog's own behaviour), "More like this"
// hands the photo back to the page as a query.

import { fileUrl, getImage, thumbUrl } from "./api.js";
import { $, basename, el, formatBytes, formatDate, formatScore } from "./dom.js";
import { shortFolder } from "./filters.js";

export class Viewer {
  /**
   * @param {object} hooks
   * @param {() => object[]} hooks.items the results currently loaded
   * @param {() => Promise<boolean>} hooks.loadMore load the next page; false when there is none
   * @param {(item: object) => void} hooks.onLike "More like this"
   * @param {(index: number) => void} hooks.onClose after closing, with the index last shown
   * @param {(detail: {image: object, panel: HTMLElement}) => void} hooks.onShow after a photo's metadata loaded
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.dialog = $("viewer");
    this.image = $("viewer-image");
    this.index = -1;
    this.detailAbort = null;
    this.imageToken = 0;
    $("viewer-close").addEventListener("click", () => this.close());
    $("viewer-prev").addEventListener("click", () => this.step(-1));
    $("viewer-next").addEventListener("click", () => this.step(1));
    $("viewer-like").addEventListener("click", () => {
      const item = this.current();
      if (item) {
        this.close();
        hooks.onLike(item);
      }
    });
    this.dialog.addEventListener("keydown", (event) => {
      // Leave arrow keys alone while typing in a field (e.g. the tags panel's input).
      if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
      if (event.key === "ArrowRight") {
        event.preventDefault();
        this.step(1);
      } else if (event.key === "ArrowLeft") {
        event.preventDefault();
        this.step(-1);
      }
    });
    this.dialog.addEventListener("close", () => {
      this.detailAbort?.abort();
      this.hooks.onClose(this.index);
    });
    // A click on the backdrop (outside the dialog's content) closes it, as people expect of overlays.
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.close();
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  current() {
    return this.hooks.items()[this.index] ?? null;
  }

  open(index) {
    if (!this.dialog.open) this.dialog.showModal();
    this.show(index);
    $("viewer-close").focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  async step(delta) {
    const target = this.index + delta;
    if (target < 0) return;
    if (target >= this.hooks.items().length && !(await this.hooks.loadMore())) return;
    if (target < this.hooks.items().length) this.show(target);
  }

  show(index) {
    const item = this.hooks.items()[index];
    if (!item) return;
    this.index = index;
    this.dialog.dataset.id = item.id;
    this.#showImage(item);
    const name = item.name || basename(item.path) || `Photo ${item.id}`;
    $("viewer-name").textContent = name;
    const total = this.hooks.items().length;
    $("viewer-position").textContent = `${index + 1} of ${total}${this.hooks.hasMore?.() ? "+" : ""}`;
    $("viewer-prev").disabled = index === 0;
    $("viewer-next").disabled = index >= total - 1 && !this.hooks.hasMore?.();
    $("viewer-open").href = fileUrl(item.id);
    this.#renderMeta(item, null);
    $("tags-panel").replaceChildren();
    this.#loadDetail(item);
  }

  #showImage(item) {
    // The thumbnail shows at once; the original replaces it when it has loaded. Formats a browser
    // cannot show (HEIC, RAW) or a file outside the roots keep the thumbnail.
    const token = ++this.imageToken;
    const name = item.name || `Photo ${item.id}`;
    this.image.alt = name;
    this.image.src = thumbUrl(item.id);
    const full = new Image();
    full.onload = () => {
      if (token === this.imageToken) this.image.src = full.src;
    };
    full.src = fileUrl(item.id);
  }

  async #loadDetail(item) {
    this.detailAbort?.abort();
    const abort = new AbortController();
    this.detailAbort = abort;
    try {
      const detail = await getImage(item.id, { signal: abort.signal });
      if (abort.signal.aborted || this.current()?.id !== item.id) return;
      this.#renderMeta({ ...item, ...detail, score: item.score }, null);
      this.hooks.onShow({ image: { ...item, ...detail }, panel: $("tags-panel") });
    } catch (err) {
      if (err.name === "AbortError") return;
      this.#renderMeta(item, err.message);
    }
  }

  #renderMeta(item, error) {
    const rows = [];
    const add = (label, value, cls) => {
      if (value === null || value === undefined || value === "") return;
      rows.push(el("div", { class: `meta-row ${cls ?? ""}`.trim() }, el("dt", {}, label), el("dd", {}, value)));
    };
    add("Folder", item.folder ? shortFolder(item.folder) : null);
    add("Taken", formatDate(item.taken_at));
    add("Camera", item.camera);
    if (item.width && item.height) add("Size", `${item.width} × ${item.height}${item.size ? ` · ${formatBytes(item.size)}` : ""}`);
    else add("File size", formatBytes(item.size));
    add("Format", item.format);
    add(item.generated ? "Prompt" : "Caption", item.caption, "meta-caption");
    // Tags are not listed here: the tag editor below the metadata (web/tags.js) shows and changes them.
    add("Score", formatScore(item.score));
    add("Note", item.note);
    add("Path", item.path, "meta-path");
    const dl = $("viewer-meta");
    dl.replaceChildren(...rows);
    if (error) dl.append(el("p", { class: "meta-error", role: "alert" }, `Could not load all details: ${error}`));
  }
}
