// The Generate panel: a prompt in nerdyrodent's `text:weight:stop` syntax, size, steps, seed, an
// optional start image (dropped, picked, or "Generate from this" in the viewer), then the running
// job's progress with its live preview, cancel, and the job list (paged). Routes: docs/generation.md.
// Everything shown from data goes in through textContent (el() in dom.js); all requests go through
// the API client (api.js), which carries the token and the server's error sentences.

import { $, el } from "./dom.js";

const POLL_MS = 700;
const POLL_HIDDEN_MS = 3000;
const PAGE = 10;
const FINISHED = new Set(["done", "failed", "cancelled"]);
const STATUS_TEXT = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", cancelled: "Cancelled" };

/** The text a person would search for: the prompt's text parts with positive weights, weights dropped. */
export function searchTextOf(prompt) {
  const parts = [];
  for (const raw of String(prompt).split("|")) {
    const fields = raw.split(":");
    const numbers = [];
    while (fields.length > 1 && numbers.length < 2 && /^\s*[+-]?(\d+(\.\d*)?|\.\d+|inf)\s*$/i.test(fields[fields.length - 1])) {
      numbers.unshift(Number(fields.pop().replace(/inf/i, "Infinity")));
    }
    const text = fields.join(":").trim();
    const weight = numbers.length ? numbers[0] : 1;
    if (text && weight > 0 && !/^#\d+$/.test(text)) parts.push(text);
  }
  return parts.join(" | ");
}

export function setupGenerate(photoseek) {
  const panel = photoseek.panels.generate;
  const api = photoseek.api;
  const state = {
    about: null,
    init: null, // {file, url, name} or {id, name}
    jobs: [],
    nextBefore: null,
    older: [], // pages loaded with "Older jobs"
    focus: null, // the job shown in the "current" card
    shownProgress: -1,
    timer: null,
    busy: false,
    polling: null, // the poll in flight
    seeded: false, // the first poll has run: jobs done before it are not news
    indexedRefresh: new Set(), // jobs whose finished image was already brought into the grid
  };

  // ---- the toolbar button ----
  const toggle = el("button", {
    type: "button", id: "generate-button", class: "gen-toggle", "aria-expanded": "false", "aria-controls": panel.id,
  }, el("span", {}, "Generate"), el("span", { class: "badge", id: "gen-active", hidden: true, title: "Jobs queued or running" }));
  photoseek.panels.toolbar.append(toggle);
  toggle.addEventListener("click", () => setOpen(panel.hidden));

  function setOpen(open) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      loadAbout();
      poll();
      $("gen-prompt").focus();
    }
  }

  async function loadAbout() {
    if (state.about) return;
    try {
      state.about = await api.request("api/generate/about");
    } catch (err) {
      $("gen-vqgan").textContent = `Cannot reach generation: ${err.message}`;
      return;
    }
    const { vqgan, limits } = state.about;
    const line = $("gen-vqgan");
    line.textContent = vqgan.toy
      ? `VQGAN: ${vqgan.label}, the tiny toy-world model, only for demos and tests. For real pictures set the vqgan setting (photoseek fetch-vqgan).`
      : `VQGAN: ${vqgan.label}`;
    line.classList.toggle("gen-vqgan-toy", Boolean(vqgan.toy));
    $("gen-steps").max = limits.max_steps;
    $("gen-cutouts").max = limits.max_cutouts;
    $("gen-lr").max = limits.max_lr;
    $("gen-seed").max = limits.max_seed;
    $("gen-prompt").maxLength = limits.max_prompt_chars;
  }

  // ---- the start image ----
  function setInit(init) {
    if (state.init?.url) URL.revokeObjectURL(state.init.url);
    state.init = init;
    const chip = $("gen-init-chip");
    chip.hidden = !init;
    $("gen-init-pick").hidden = Boolean(init);
    if (init) {
      $("gen-init-thumb").src = init.url ?? api.thumbUrl(init.id);
      $("gen-init-name").textContent = init.name;
    } else {
      $("gen-init-thumb").removeAttribute("src");
      $("gen-init-name").textContent = "";
    }
  }
  const picker = $("gen-init-input");
  $("gen-init-pick").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    const file = picker.files?.[0];
    if (file) setInit({ file, url: URL.createObjectURL(file), name: file.name || "Pasted image" });
    picker.value = "";
  });
  $("gen-init-clear").addEventListener("click", () => setInit(null));
  photoseek.on("generate-drop", ({ file }) => {
    setOpen(true);
    setInit({ file, url: URL.createObjectURL(file), name: file.name || "Dropped image" });
  });
  const fromViewer = $("viewer-generate");
  fromViewer.hidden = false;
  fromViewer.addEventListener("click", () => {
    const image = photoseek.currentImage();
    if (!image) return;
    photoseek.closeViewer();
    setOpen(true);
    setInit({ id: image.id, name: image.name || `Photo ${image.id}` });
  });

  // ---- submit ----
  $("gen-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.busy) return;
    const prompt = $("gen-prompt").value.trim();
    if (!prompt) {
      message("Write a prompt first, e.g. “a red circle on a blue background”.", true);
      $("gen-prompt").focus();
      return;
    }
    const fields = {
      prompt,
      size: $("gen-size").value,
      steps: $("gen-steps").value,
      seed: $("gen-seed").value,
      cutouts: $("gen-cutouts").value,
      lr: $("gen-lr").value,
      cut_pow: $("gen-cut-pow").value,
      init_weight: $("gen-init-weight").value,
      augments: $("gen-augment").checked ? "" : "none",
    };
    state.busy = true;
    $("gen-submit").disabled = true;
    message("Queuing…");
    try {
      let reply;
      if (state.init?.file) {
        const form = new FormData();
        for (const [key, value] of Object.entries(fields)) if (value !== "") form.append(key, value);
        form.append("init_image", state.init.file, state.init.file.name || "start.png");
        reply = await api.request("api/generate", { method: "POST", body: form });
      } else {
        const json = { prompt, size: fields.size };
        for (const key of ["steps", "seed", "cutouts"]) if (fields[key] !== "") json[key] = Number.parseInt(fields[key], 10);
        for (const key of ["lr", "cut_pow", "init_weight"]) if (fields[key] !== "") json[key] = Number(fields[key]);
        if (fields.augments) json.augments = fields.augments;
        if (state.init?.id) json.init_image_id = Number(state.init.id);
        reply = await api.request("api/generate", { method: "POST", json });
      }
      message(`Job ${reply.id} queued (seed ${reply.seed}).`);
      await poll(); // a poll begun before the job existed ends first; the next one sees it
      state.focus = reply.id;
      state.shownProgress = -1;
      await poll();
    } catch (err) {
      message(capitalise(err.message), true);
    } finally {
      state.busy = false;
      $("gen-submit").disabled = false;
    }
  });

  function message(text, isError = false) {
    const line = $("gen-message");
    line.textContent = text;
    line.classList.toggle("gen-message-error", isError);
  }

  // ---- the job list, polled while something is queued or running ----
  /** One poll at a time: a caller during a poll shares it. */
  function poll() {
    if (!state.polling) state.polling = pollOnce().finally(() => { state.polling = null; });
    return state.polling;
  }

  async function pollOnce() {
    clearTimeout(state.timer);
    state.timer = null;
    let page;
    try {
      page = await api.request(`api/generate?limit=${PAGE}`);
    } catch (err) {
      message(capitalise(err.message), true);
      return;
    }
    state.jobs = page.jobs;
    if (!state.older.length) state.nextBefore = page.next_before;
    const active = page.jobs.filter((j) => !FINISHED.has(j.status));
    if (state.focus === null || !page.jobs.some((j) => j.id === state.focus)) {
      state.focus = (active.find((j) => j.status === "running") ?? active[0] ?? page.jobs[0])?.id ?? null;
    }
    render();
    $("gen-active").hidden = active.length === 0;
    $("gen-active").textContent = String(active.length);
    for (const job of page.jobs) {
      if (job.status === "done" && !state.indexedRefresh.has(job.id)) {
        state.indexedRefresh.add(job.id);
        // A new image has landed: count it, and show it in the grid.
        if (state.seeded) photoseek.refreshFacets().then(() => photoseek.refresh());
      }
    }
    state.seeded = true; // jobs done before the page opened are not news
    // Keep watching a job with the panel closed too (more slowly): its image joins the grid when done.
    if (active.length) state.timer = setTimeout(poll, panel.hidden ? POLL_HIDDEN_MS : POLL_MS);
  }

  function render() {
    const all = [...state.jobs, ...state.older.filter((o) => !state.jobs.some((j) => j.id === o.id))];
    $("gen-jobs").replaceChildren(...all.map(jobRow));
    $("gen-more").hidden = state.nextBefore === null || state.nextBefore === undefined;
    renderCurrent(all.find((j) => j.id === state.focus) ?? null);
  }

  function jobRow(job) {
    const pct = Math.round((job.progress ?? 0) * 100);
    const status = el("span", { class: `gen-status gen-status-${job.status}` }, STATUS_TEXT[job.status] ?? job.status);
    const detail = job.status === "running" ? `${pct} %` : job.status === "failed" ? job.error ?? "" : "";
    const row = el("li", { class: "gen-job", dataset: { id: job.id, status: job.status } },
      status,
      el("button", { type: "button", class: "gen-job-prompt", title: "Show this job", onclick: () => { state.focus = job.id; state.shownProgress = -1; render(); } }, job.prompt),
      el("span", { class: "gen-job-detail" }, detail),
    );
    if (!FINISHED.has(job.status)) row.append(el("button", { type: "button", class: "text-button gen-job-cancel", onclick: () => cancel(job.id) }, "Cancel"));
    if (job.status === "done") row.append(el("button", { type: "button", class: "text-button gen-job-find", onclick: () => photoseek.searchText(searchTextOf(job.prompt)) }, "Find it"));
    return row;
  }

  function renderCurrent(job) {
    const card = $("gen-current");
    card.hidden = !job;
    if (!job) return;
    card.dataset.id = job.id;
    card.dataset.status = job.status;
    const pct = Math.round((job.progress ?? 0) * 100);
    $("gen-current-prompt").textContent = job.prompt;
    $("gen-bar").setAttribute("aria-valuenow", String(pct));
    $("gen-bar-fill").style.width = `${pct}%`;
    const seed = job.params?.seed !== undefined ? ` · seed ${job.params.seed}` : "";
    const text = {
      queued: "Waiting for the jobs before it",
      running: `Step ${Math.round((job.progress ?? 0) * (job.params?.steps ?? 0))} of ${job.params?.steps ?? "?"}`,
      done: "Done: the image is in the library",
      failed: `Failed: ${job.error ?? "no reason given"}`,
      cancelled: "Cancelled",
    }[job.status] ?? job.status;
    $("gen-current-status").textContent = `${text}${seed}`;
    $("gen-cancel").hidden = FINISHED.has(job.status);
    $("gen-find").hidden = job.status !== "done";
    // A new preview only when the job moved on: the image request is not free.
    if (job.progress !== state.shownProgress || !$("gen-preview").getAttribute("src")) {
      state.shownProgress = job.progress;
      if (job.status === "queued" || (job.status !== "done" && !job.progress)) {
        $("gen-preview").removeAttribute("src");
      } else {
        $("gen-preview").src = `api/generate/${encodeURIComponent(job.id)}/preview?v=${encodeURIComponent(String(job.progress))}`;
      }
    }
  }

  async function cancel(id) {
    try {
      await api.request(`api/generate/${encodeURIComponent(id)}/cancel`, { method: "POST" });
    } catch (err) {
      message(capitalise(err.message), true);
    }
    await poll();
  }

  $("gen-cancel").addEventListener("click", () => state.focus !== null && cancel(state.focus));
  $("gen-find").addEventListener("click", () => {
    const job = state.jobs.find((j) => j.id === state.focus);
    if (job) photoseek.searchText(searchTextOf(job.prompt));
  });
  $("gen-more").addEventListener("click", async () => {
    try {
      const page = await api.request(`api/generate?limit=${PAGE}&before=${encodeURIComponent(state.nextBefore)}`);
      state.older.push(...page.jobs);
      state.nextBefore = page.next_before;
      render();
    } catch (err) {
      message(capitalise(err.message), true);
    }
  });
  $("gen-preview").addEventListener("error", () => $("gen-preview").removeAttribute("src"));
  // Jobs left running by an earlier visit: show their count, and follow them until they end.
  photoseek.on("results", () => {
    if (!state.seeded && state.timer === null) poll();
  });
}

function capitalise(text) {
  const s = String(text);
  return s.charAt(0).toUpperCase() + s.slice(1);
}
