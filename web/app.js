// photoseek's page: search as you type, browse the results, open a photo, find more like it, drop an
// image to search by it, filter. The state that can be written down (text, like, filters) lives in
// the URL, so reload and back work. Other features plug in through `photoseek` (see the end).

import * as api from "./api.js";
import { $, debounce, el, icon, ICON_CLOSE } from "./dom.js";
import { FILTER_KEYS, Filters } from "./filters.js";
import { Grid } from "./grid.js";
import { Viewer } from "./viewer.js";
import { setupTags } from "./tags.js";
import { setupGenerate } from "./generate.js";

const PAGE_SIZE = 60;
const TYPING_DELAY_MS = 250;
const IMAGE_NAME = /\.(jpe?g|png|gif|webp|bmp|tiff?|heic|heif|avif|dng|cr2|cr3|nef|arw|orf|rw2|raf)$/i;

// What is searched. `image` (a dropped File) cannot go into a URL, so it does not survive a reload.
const state = { q: "", like: null, likeName: null, image: null, imageUrl: null, filters: {} };
// The current result list: which request it belongs to, and where the next page starts.
const run = { abort: null, generation: 0, nextOffset: null, loadingMore: null, facets: null, lastHistory: null };

const events = new EventTarget();
function emit(name, detail) {
  events.dispatchEvent(new CustomEvent(name, { detail }));
}

const input = $("q");
const filters = new Filters((values) => {
  state.filters = values;
  search({ history: "push" });
});
const grid = new Grid($("results"), $("sentinel"), {
  onOpen: (index) => viewer.open(index),
  onNeedMore: () => loadMore(),
});
const viewer = new Viewer({
  items: () => grid.items,
  hasMore: () => run.nextOffset !== null && run.nextOffset !== undefined,
  loadMore: () => loadMore(),
  onLike: (item) => moreLike(item.id, item.name),
  onClose: (index) => {
    grid.focus(index);
    emit("viewer-close", { index });
  },
  onShow: (detail) => emit("viewer-open", detail),
});

// ---- the search itself ----

function params() {
  return { q: state.q.trim(), like: state.like, ...state.filters };
}

function hasQuery() {
  return Boolean(state.q.trim() || state.like || state.image);
}

/** Start a new result list (the previous request, if still running, is cancelled). */
async function search({ history = "none" } = {}) {
  typing.cancel();
  if (history !== "none") writeUrl(history);
  renderQueryChips();
  run.abort?.abort();
  const abort = new AbortController();
  run.abort = abort;
  const generation = ++run.generation;
  run.loadingMore = null;
  run.nextOffset = null; // no "load more" of the old list while the new one's first page is coming
  setLoading(true);
  try {
    const response = await api.search(params(), { image: state.image, limit: PAGE_SIZE, signal: abort.signal });
    if (generation !== run.generation) return;
    hideError();
    grid.clear();
    grid.append(response.results);
    run.nextOffset = response.next_offset ?? null;
    window.scrollTo({ top: 0 });
    renderStatus(response);
    emit("results", { results: grid.items, response, params: params() });
    grid.recheck();
  } catch (err) {
    if (err.name === "AbortError" || generation !== run.generation) return;
    showError(err.message);
    renderStatus(null);
  } finally {
    if (generation === run.generation) setLoading(false);
  }
}

/** Append the next page; resolves true when results were added. Concurrent calls share one request. */
function loadMore() {
  if (run.loadingMore) return run.loadingMore;
  if (run.nextOffset === null || run.nextOffset === undefined || !run.abort) return Promise.resolve(false);
  const generation = run.generation;
  const spinner = $("sentinel").querySelector(".spinner");
  spinner.hidden = false;
  run.loadingMore = (async () => {
    try {
      const response = await api.search(params(), {
        image: state.image,
        offset: run.nextOffset,
        limit: PAGE_SIZE,
        signal: run.abort.signal,
      });
      if (generation !== run.generation) return false;
      grid.append(response.results);
      run.nextOffset = response.next_offset ?? null;
      renderStatus(response);
      emit("results", { results: grid.items, response, params: params() });
      return response.results.length > 0;
    } catch (err) {
      if (err.name !== "AbortError" && generation === run.generation) {
        showError(err.message);
        run.nextOffset = null; // stop retrying in a loop; a new search starts over
      }
      return false;
    } finally {
      spinner.hidden = true;
      if (generation === run.generation) {
        run.loadingMore = null;
        grid.recheck();
      }
    }
  })();
  return run.loadingMore;
}

const typing = debounce(() => search({ history: run.lastHistory === "typing" ? "replace" : "typing" }), TYPING_DELAY_MS);

function moreLike(id, name) {
  clearImage();
  state.like = String(id);
  state.likeName = name ?? null;
  state.q = "";
  input.value = "";
  search({ history: "push" });
}

function searchByImage(file) {
  if (!file) return;
  viewer.close();
  clearImage();
  state.image = file;
  state.imageUrl = URL.createObjectURL(file);
  state.like = null;
  state.q = "";
  input.value = "";
  search({ history: "push" });
}

function clearImage() {
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.image = null;
  state.imageUrl = null;
}

// ---- URL state ----

function urlFor() {
  const query = new URLSearchParams();
  for (const key of api.SEARCH_KEYS) {
    const value = params()[key];
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `?${text}` : location.pathname;
}

/** push: a new history entry; typing: push, then replace while the person keeps typing. */
function writeUrl(mode) {
  const url = urlFor();
  const same = url === `${location.search}` || (url === location.pathname && !location.search);
  if (!same) {
    if (mode === "replace") history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }
  run.lastHistory = mode === "push" ? "push" : "typing";
}

function readUrl() {
  const query = new URLSearchParams(location.search);
  clearImage();
  state.q = query.get("q") ?? "";
  state.like = query.get("like") || null;
  state.likeName = null;
  input.value = state.q;
  const values = {};
  for (const key of FILTER_KEYS) if (query.has(key)) values[key] = query.get(key);
  filters.set(values);
  state.filters = { ...filters.values };
  run.lastHistory = null;
}

// ---- rendering ----

function renderQueryChips() {
  const chips = [];
  if (state.image) {
    chips.push(queryChip(state.imageUrl, state.image.name || "Pasted image", "Remove the image from the search", () => {
      clearImage();
      search({ history: "none" });
    }));
  }
  if (state.like) {
    const chip = queryChip(api.thumbUrl(state.like), state.likeName ? `Like ${state.likeName}` : `Like photo ${state.like}`,
      "Stop searching for similar photos", () => {
        state.like = null;
        state.likeName = null;
        search({ history: "push" });
      });
    chips.push(chip);
    if (!state.likeName) {
      // After a reload only the id is known: fetch the name for the chip.
      const like = state.like;
      api.getImage(like).then((image) => {
        if (state.like === like) {
          state.likeName = image.name;
          chip.querySelector(".qchip-text").textContent = `Like ${image.name}`;
        }
      }, () => {});
    }
  }
  $("query-chips").replaceChildren(...chips);
  input.placeholder = chips.length ? "Add words to refine" : "Describe a photo, or drop one here";
}

function queryChip(src, text, removeLabel, onRemove) {
  return el(
    "span",
    { class: "qchip" },
    el("img", { src, alt: "", class: "qchip-image" }),
    el("span", { class: "qchip-text" }, text),
    el("button", { type: "button", class: "qchip-remove", "aria-label": removeLabel, title: removeLabel, onclick: onRemove },
      icon(ICON_CLOSE, { size: 14 })),
  );
}

function renderStatus(response) {
  const status = $("status");
  const empty = $("empty");
  const count = grid.items.length;
  const filtered = Object.keys(state.filters).length > 0;
  empty.hidden = true;
  if (!response) {
    status.textContent = "";
    return;
  }
  if (count === 0) {
    const libraryEmpty = run.facets ? run.facets.count === 0 : !hasQuery() && !filtered;
    if (libraryEmpty) {
      showEmpty("No photos yet", "Index a folder of photos, then reload this page. To keep it up to date as photos arrive, use `photoseek watch` instead.", "photoseek index ~/Pictures");
    } else if (hasQuery() || filtered) {
      showEmpty("No photos match", filtered ? "Try fewer words, or remove a filter." : "Try fewer or different words.");
    } else {
      showEmpty("No photos to show", "The library has no photos that can be shown.");
    }
    status.textContent = "";
    return;
  }
  const more = response.next_offset !== null && response.next_offset !== undefined ? "+" : "";
  const ms = typeof response.query_ms === "number" ? ` in ${Math.round(response.query_ms)} ms` : "";
  if (hasQuery()) status.textContent = `${count}${more} best matches${ms}`;
  else if (filtered) status.textContent = `${count}${more} photos, newest first`;
  else status.textContent = run.facets ? `${run.facets.count} photos, newest first` : `${count}${more} photos, newest first`;
}

function showEmpty(title, text, code) {
  $("empty").hidden = false;
  $("empty-title").textContent = title;
  $("empty-text").textContent = text;
  $("empty-code").hidden = !code;
  $("empty-code").textContent = code ?? "";
}

function setLoading(on) {
  $("progress").hidden = !on;
  $("results").setAttribute("aria-busy", String(on));
  document.body.classList.toggle("is-loading", on);
}

function showError(message) {
  const text = String(message);
  // The server's sentences start in lower case (they also go to logs); a banner reads better capitalised.
  $("error-text").textContent = text.charAt(0).toUpperCase() + text.slice(1);
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

/** Reload the filter choices; false when the server refused (no token given), true otherwise. */
async function refreshFacets() {
  try {
    run.facets = await api.getFacets();
    filters.setFacets(run.facets);
  } catch (err) {
    if (err.status === 401) {
      showError(err.message);
      return false;
    }
    showError(`Could not load the filters: ${err.message}`);
  }
  return true;
}

// ---- drop, paste, pick an image ----

function firstImage(files) {
  return [...(files ?? [])].find((f) => f.type.startsWith("image/") || IMAGE_NAME.test(f.name)) ?? null;
}

function setupImageInput() {
  const overlay = $("drop-overlay");
  let depth = 0; // dragenter/dragleave fire for every child element crossed
  const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    // With the Generate panel open, the overlay offers a second target: "generate from it".
    $("drop-generate").hidden = $("generate-panel").hidden;
    overlay.hidden = false;
  });
  window.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const files = event.dataTransfer?.files;
    if (!files?.length) return;
    const file = firstImage(files);
    const toGenerate = Boolean(event.target.closest?.("[data-drop-to='generate']"));
    if (file && toGenerate) emit("generate-drop", { file });
    else if (file) searchByImage(file);
    else showError(`“${files[0].name}” is not an image. Drop a photo (JPEG, PNG, HEIC, …) to search by it.`);
  });
  document.addEventListener("paste", (event) => {
    const file = firstImage(event.clipboardData?.files);
    if (file) {
      event.preventDefault();
      searchByImage(file);
    }
  });
  const picker = $("image-input");
  $("image-button").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    searchByImage(picker.files?.[0]);
    picker.value = "";
  });
}

// ---- the access token ----

function askForToken(message) {
  const dialog = $("login");
  $("login-message").textContent = message;
  $("login-token").value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? $("login-token").value.trim() || null : null), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("login-token").focus();
  });
}

// ---- wiring ----

function start() {
  api.setTokenPrompt(askForToken);
  input.addEventListener("input", () => {
    state.q = input.value;
    typing();
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.q = input.value;
    search({ history: "push" });
  });
  $("error-close").addEventListener("click", hideError);
  document.addEventListener("keydown", (event) => {
    // "/" jumps to the search box, as on many sites, unless the person is typing somewhere.
    if (event.key === "/" && !event.target.closest?.("input, textarea, select, [contenteditable]") && !viewer.isOpen) {
      event.preventDefault();
      input.focus();
      input.select();
    }
  });
  window.addEventListener("popstate", () => {
    viewer.close();
    readUrl();
    search();
  });
  setupImageInput();
  readUrl();
  renderQueryChips();
  // Facets first: they tell an empty library from an empty result. Without the token (the person
  // cancelled the prompt) nothing would load; the next search they start asks again.
  refreshFacets().then((ok) => ok && search());
}

start();

// ---- extension points for other features ----
//
// import { photoseek } from "./app.js";
//   photoseek.on("viewer-open", ({ image, panel }) => ...)  a photo's full metadata loaded in the viewer;
//       `panel` is <section id="tags-panel">, emptied for every photo: render tag chips into it.
//   photoseek.on("viewer-close", ({ index }) => ...)
//   photoseek.on("results", ({ results, response, params }) => ...)  after every page of results.
//   photoseek.on("generate-drop", ({ file }) => ...)  an image dropped on the overlay's "generate" card.
//   photoseek.panels.generate   <section id="generate-panel"> (hidden until you unhide it)
//   photoseek.panels.toolbar    a slot in the top bar for a button (e.g. "Generate")
//   photoseek.refresh()         re-run the current search (a new image landed, a tag changed)
//   photoseek.refreshFacets()   reload the filter choices (a tag was accepted)
//   photoseek.api               the API client: request(path, {method, json, body, signal}) with the
//                               token flow and {"error"} messages; thumbUrl(id), fileUrl(id), ...
//   photoseek.showError(text)   the page's error banner
export const photoseek = {
  on(name, fn) {
    const listener = (event) => fn(event.detail);
    events.addEventListener(name, listener);
    return () => events.removeEventListener(name, listener);
  },
  api,
  panels: { tags: $("tags-panel"), generate: $("generate-panel"), toolbar: $("toolbar-extra") },
  refresh: () => search(),
  refreshFacets,
  showError,
  searchText(text) {
    clearImage();
    state.like = null;
    state.q = text;
    input.value = text;
    search({ history: "push" });
  },
  openViewer: (index) => viewer.open(index),
  closeViewer: () => viewer.close(),
  currentImage: () => (viewer.isOpen ? viewer.current() : null),
};
window.photoseek = photoseek;
setupTags(photoseek); // tag chips in the viewer (web/tags.js)
setupGenerate(photoseek); // the Generate panel (web/generate.js)
