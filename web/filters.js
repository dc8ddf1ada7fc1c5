// The filters panel (folder, camera, type, tag, date range, generated only, minimum score), filled
// from /api/facets, and the chips that show which filters apply (each removable on its own).

import { $, el, icon, ICON_CLOSE } from "./dom.js";

export const FILTER_KEYS = ["folder", "camera", "type", "tag", "date_from", "date_to", "generated", "min_score"];

const LABELS = {
  folder: "Folder",
  camera: "Camera",
  type: "Type",
  tag: "Tag",
  date_from: "From",
  date_to: "Until",
  generated: "Generated only",
  min_score: "Score ≥",
};

// Facet lists may hold plain strings or {name|path|value, count} objects.
function facetValue(entry) {
  return typeof entry === "string" ? entry : entry.value ?? entry.path ?? entry.name;
}

// Folders arrive as absolute paths; they are shown relative to the deepest folder they all share
// ("Été 2024", "2019/Beach week"), which is what a person recognises.
let folderBase = "";

function commonFolder(paths) {
  if (paths.length === 0) return "";
  const split = paths.map((p) => String(p).split(/([\\/])/));
  let n = 0;
  while (split.every((parts) => n < parts.length - 1 && parts[n] === split[0][n])) n += 1;
  // Keep whole names: cut back to just after the last separator.
  while (n > 0 && !/^[\\/]$/.test(split[0][n - 1])) n -= 1;
  return split[0].slice(0, n).join("");
}

/** A folder as a person reads it: relative to the library's common folder when that leaves a name. */
export function shortFolder(path) {
  const text = String(path ?? "");
  if (folderBase && text.startsWith(folderBase) && text.length > folderBase.length) return text.slice(folderBase.length);
  return text;
}

function fillSelect(select, entries, format = (v) => v) {
  const keep = select.value;
  const first = select.options[0];
  select.replaceChildren(first);
  for (const entry of entries ?? []) {
    const value = facetValue(entry);
    if (value === null || value === undefined || value === "") continue;
    const count = typeof entry === "object" && entry.count !== undefined ? ` (${entry.count})` : "";
    select.append(el("option", { value }, `${format(value)}${count}`));
  }
  select.value = keep;
}

function formatDay(day) {
  const [y, m, d] = String(day).split("-").map(Number);
  if (!y || !m || !d) return String(day);
  return new Date(y, m - 1, d).toLocaleDateString(undefined, { dateStyle: "medium" });
}

export class Filters {
  /** @param {(filters: object) => void} onChange called with the full set of filters after any change */
  constructor(onChange) {
    this.onChange = onChange;
    this.form = $("filters-panel");
    this.button = $("filters-button");
    this.values = {};
    this.button.addEventListener("click", () => this.toggle());
    this.form.addEventListener("submit", (event) => event.preventDefault());
    this.form.addEventListener("change", () => this.#fromForm());
    $("f-min-score").addEventListener("input", () => this.#showMinScore());
    $("filters-clear").addEventListener("click", () => this.set({}, { notify: true }));
    $("filter-chips").addEventListener("click", (event) => {
      const chip = event.target.closest("[data-filter]");
      if (!chip) return;
      const values = { ...this.values };
      delete values[chip.dataset.filter];
      this.set(values, { notify: true });
    });
  }

  toggle(open = this.form.hidden) {
    this.form.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) this.form.querySelector("select, input")?.focus();
  }

  /** Fill the choices from GET /api/facets. */
  setFacets(facets) {
    const folders = (facets.folders ?? []).map(facetValue);
    folderBase = folders.length > 1 ? commonFolder(folders) : commonFolder(folders.map((f) => f.replace(/[^\\/]+[\\/]?$/, "")));
    fillSelect($("f-folder"), facets.folders, shortFolder);
    fillSelect($("f-camera"), facets.cameras);
    fillSelect($("f-type"), facets.types, (v) => String(v).toUpperCase());
    fillSelect($("f-tag"), facets.tags);
    for (const id of ["f-date-from", "f-date-to"]) {
      if (facets.date_min) $(id).min = String(facets.date_min).slice(0, 10);
      if (facets.date_max) $(id).max = String(facets.date_max).slice(0, 10);
    }
    this.#toForm();
  }

  /** Replace the filters (e.g. from the URL); notify=true runs a new search. */
  set(values, { notify = false } = {}) {
    this.values = {};
    for (const key of FILTER_KEYS) {
      const value = values[key];
      if (value !== undefined && value !== null && value !== "" && !(key === "min_score" && Number(value) === 0)) {
        this.values[key] = String(value);
      }
    }
    this.#toForm();
    this.#renderChips();
    if (notify) this.onChange({ ...this.values });
  }

  #fromForm() {
    const data = new FormData(this.form);
    const values = {};
    for (const key of FILTER_KEYS) values[key] = data.get(key) ?? "";
    this.set(values, { notify: true });
  }

  #toForm() {
    for (const key of FILTER_KEYS) {
      const field = this.form.elements.namedItem(key);
      if (!field) continue;
      const value = this.values[key] ?? "";
      if (field.type === "checkbox") field.checked = value === "1";
      else if (field.tagName === "SELECT" && value && ![...field.options].some((o) => o.value === value)) {
        // A value from the URL before the facets arrived (or no longer in them): keep it selectable.
        field.append(el("option", { value }, value));
        field.value = value;
      } else field.value = key === "min_score" ? value || "0" : value;
    }
    this.#showMinScore();
  }

  #showMinScore() {
    const value = Number($("f-min-score").value);
    $("f-min-score-value").textContent = value > 0 ? value.toFixed(2) : "off";
  }

  #renderChips() {
    const chips = Object.entries(this.values).map(([key, value]) => {
      let text = value;
      if (key === "date_from" || key === "date_to") text = formatDay(value);
      if (key === "type") text = value.toUpperCase();
      if (key === "folder") text = shortFolder(value);
      if (key === "min_score") text = Number(value).toFixed(2);
      const label = key === "generated" ? LABELS[key] : `${LABELS[key]}: ${text}`;
      return el(
        "button",
        { type: "button", class: "chip", dataset: { filter: key }, "aria-label": `Remove filter ${label}`, title: "Remove this filter" },
        el("span", { class: "chip-text" }, label),
        icon(ICON_CLOSE, { size: 14 }),
      );
    });
    $("filter-chips").replaceChildren(...chips);
    const count = chips.length;
    $("filters-count").hidden = count === 0;
    $("filters-count").textContent = String(count);
  }
}
