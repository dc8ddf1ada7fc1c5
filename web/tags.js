// Tag chips in the viewer: accept or reject suggestions, add your own tags, remove them.
// Wired by app.js: setupTags(photoseek) once the page's extension points exist.
// Routes: GET/POST api/images/ID/tags (see docs/tags.md). Names come from data: textContent only.

import { el, icon, ICON_CLOSE } from "./dom.js";

const ICON_CHECK = "M5 12l5 5L20 7";

function loadStyles() {
  if (document.querySelector('link[data-tags-css]')) return;
  document.head.append(el("link", { rel: "stylesheet", href: "tags.css", dataset: { tagsCss: "1" } }));
}

const tagsUrl = (id) => `api/images/${encodeURIComponent(id)}/tags`;

function button(label, path, onclick, cls) {
  return el("button", { type: "button", class: `tag-btn ${cls}`, title: label, "aria-label": label, onclick }, icon(path, { size: 14 }));
}

/** Render one photo's tags into `panel`; every change re-renders from the server's answer. */
function renderTags(photoseek, panel, imageId, doc) {
  const change = async (name, action) => {
    try {
      const next = await photoseek.api.request(tagsUrl(imageId), { method: "POST", json: { name, action } });
      renderTags(photoseek, panel, imageId, next);
      if (action !== "reject") photoseek.refreshFacets(); // accepted tags are filter choices
    } catch (err) {
      photoseek.showError(err.message);
    }
  };
  const accepted = doc.tags.filter((t) => t.state === "accepted");
  const suggested = doc.tags.filter((t) => t.state === "suggested");
  const rejected = doc.tags.filter((t) => t.state === "rejected");

  const chips = el("ul", { class: "tag-chips", "aria-label": "Tags" });
  for (const t of accepted) {
    chips.append(
      el("li", { class: "tag-chip tag-accepted", dataset: { tag: t.name } },
        el("span", { class: "tag-name" }, t.name),
        button(`Remove tag ${t.name}`, ICON_CLOSE, () => change(t.name, "remove"), "tag-remove")),
    );
  }
  for (const t of suggested) {
    const pct = t.score === null || t.score === undefined ? "" : ` ${Math.round(t.score * 100)}%`;
    chips.append(
      el("li", { class: "tag-chip tag-suggested", dataset: { tag: t.name }, title: `suggested${pct}` },
        el("span", { class: "tag-name" }, t.name),
        button(`Accept tag ${t.name}`, ICON_CHECK, () => change(t.name, "accept"), "tag-accept"),
        button(`Reject tag ${t.name}`, ICON_CLOSE, () => change(t.name, "reject"), "tag-reject")),
    );
  }
  const input = el("input", { type: "text", class: "tag-input", placeholder: "Add a tag", maxlength: "100", "aria-label": "Add a tag" });
  const form = el("form", { class: "tag-add", onsubmit: (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (name) change(name, "add");
  } }, input);

  const parts = [el("h3", { class: "tag-title" }, "Tags"), chips, form];
  if (rejected.length) {
    // Undo a rejection: removing it lets the tag be suggested again.
    const list = el("ul", { class: "tag-chips" });
    for (const t of rejected) {
      list.append(el("li", { class: "tag-chip tag-rejected", dataset: { tag: t.name } },
        el("span", { class: "tag-name" }, t.name),
        button(`Undo rejecting ${t.name}`, ICON_CLOSE, () => change(t.name, "remove"), "tag-undo")));
    }
    parts.push(el("details", { class: "tag-rejected-list" }, el("summary", {}, `Rejected (${rejected.length})`), list));
  }
  panel.replaceChildren(...parts);
}

export function setupTags(photoseek) {
  loadStyles();
  let shown = null;
  photoseek.on("viewer-open", async ({ image, panel }) => {
    shown = image.id;
    try {
      const doc = await photoseek.api.request(tagsUrl(image.id));
      if (shown === image.id) renderTags(photoseek, panel, image.id, doc);
    } catch (err) {
      if (err.status !== 404) photoseek.showError(err.message);
    }
  });
  photoseek.on("viewer-close", () => {
    shown = null;
  });
}
