// The results grid: square thumbnail tiles (focusable buttons), arrow-key movement between them,
// and endless scroll through an IntersectionObserver on a sentinel below the grid.

import { thumbUrl } from "./api.js";
import { el, formatScore } from "./dom.js";

export class Grid {
  /**
   * @param {HTMLElement} container the grid element
   * @param {HTMLElement} sentinel an element below the grid; when it scrolls near, onNeedMore runs
   * @param {{onOpen: (index: number) => void, onNeedMore: () => void}} handlers
   */
  constructor(container, sentinel, { onOpen, onNeedMore }) {
    this.container = container;
    this.sentinel = sentinel;
    this.items = [];
    this.onOpen = onOpen;
    container.addEventListener("click", (event) => {
      const tile = event.target.closest(".tile");
      if (tile) onOpen(Number(tile.dataset.index));
    });
    container.addEventListener("keydown", (event) => this.#arrowKeys(event));
    // Start loading the next page well before the person reaches the end.
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) onNeedMore();
      },
      { rootMargin: "800px 0px" },
    );
    this.observer.observe(sentinel);
  }

  clear() {
    this.items = [];
    this.container.replaceChildren();
  }

  /** Add results (objects from /api/search) after those shown. */
  append(results) {
    const start = this.items.length;
    this.items.push(...results);
    const tiles = results.map((item, i) => this.#tile(item, start + i));
    this.container.append(...tiles);
  }

  /** Re-check the sentinel: after a page loads it may still be in view (a tall screen). */
  recheck() {
    this.observer.unobserve(this.sentinel);
    this.observer.observe(this.sentinel);
  }

  tile(index) {
    return this.container.querySelector(`.tile[data-index="${index}"]`);
  }

  focus(index) {
    const tile = this.tile(index);
    if (tile) {
      tile.focus({ preventScroll: true });
      tile.scrollIntoView({ block: "nearest" });
    }
  }

  #tile(item, index) {
    const score = formatScore(item.score);
    const name = item.name || `Photo ${item.id}`;
    const img = el("img", {
      src: thumbUrl(item.id),
      alt: name,
      loading: "lazy",
      decoding: "async",
      draggable: "false",
    });
    img.addEventListener("error", () => img.closest(".tile")?.classList.add("tile-broken"), { once: true });
    const tile = el(
      "button",
      {
        type: "button",
        class: "tile",
        title: score ? `${name} · score ${score}` : name,
        dataset: { index, id: item.id, name, score: score ?? "" },
      },
      img,
      el("span", { class: "tile-name", "aria-hidden": "true" }, name),
      score ? el("span", { class: "tile-score", "aria-label": `score ${score}` }, score) : null,
      item.generated ? el("span", { class: "tile-flag", title: "Generated image" }, "AI") : null,
    );
    return tile;
  }

  #arrowKeys(event) {
    const tile = event.target.closest?.(".tile");
    if (!tile || event.altKey || event.ctrlKey || event.metaKey) return;
    const index = Number(tile.dataset.index);
    const columns = getComputedStyle(this.container).gridTemplateColumns.split(" ").length || 1;
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -index, End: this.items.length - 1 - index };
    if (!(event.key in moves)) return;
    const target = index + moves[event.key];
    if (target < 0 || target >= this.items.length) return;
    event.preventDefault();
    this.focus(target);
  }
}
