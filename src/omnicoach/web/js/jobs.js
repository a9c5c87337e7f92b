// The Jobs view (#jobs, and #jobs/<id> for one job): the caller's background jobs (training,
// evaluations…) with their status, progress, log, metric curves and artifacts, one of them
// followed live; and a form that starts a LoRA training from a ZIP of pictures.
// The jobs run in `omnicoach worker`; this page only reads them (a list polled while any job
// is active, one job's Server-Sent Events), asks to cancel, and downloads what they made.

import { api, fetchBlob, postForm, streamEvents } from "./api.js";
import { el, icon } from "./dom.js";

const ACTIVE = ["queued", "running"];
const STATUS_TEXT = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};
const LIST_REFRESH_MS = 3000; // how often the list is read again while a job is active
const MAX_LOG_LINES = 500; // the page keeps the last ones; the server keeps them all
const IMAGE_ARTIFACT = /\.(png|jpe?g|webp|gif)$/i;
// The trigger word as the job checks it (image_lora_job.py): one word of 2–40 characters.
const TRIGGER = /^[\p{L}\p{N}_-]{2,40}$/u;
const SVG = "http://www.w3.org/2000/svg";

/**
 * What a URL hash names: undefined when it is not a Jobs address, null for the Jobs view
 * without a job open, else the open job's id.
 */
export function jobsRoute(hash) {
  let path;
  try {
    path = decodeURIComponent(hash.replace(/^#/, ""));
  } catch {
    return undefined; // not an address this page writes
  }
  if (path === "jobs") return null;
  if (path.startsWith("jobs/") && path.length > "jobs/".length) return path.slice(5);
  return undefined;
}

function jobHash(id) {
  return id ? `#jobs/${encodeURIComponent(id)}` : "#jobs";
}

function jobPath(id, rest = "") {
  return `jobs/${encodeURIComponent(id)}${rest}`;
}

function artifactPath(id, name) {
  return jobPath(id, `/artifacts/${encodeURIComponent(name)}`);
}

const isActive = (job) => ACTIVE.includes(job.status);

export class JobsView {
  /**
   * main: the main column (its chat parts are hidden while the view shows); title: the top
   * bar's heading; link: the sidebar's Jobs entry; announce(text): for screen readers;
   * askForKey(): opens the settings at the API key.
   */
  constructor({ main, title, link, announce, askForKey }) {
    const $ = (id) => document.getElementById(id);
    this.ui = {
      main,
      title,
      link,
      view: $("jobs-view"),
      detail: $("job-detail"),
      list: $("job-list"),
      listError: $("job-list-error"),
      listEmpty: $("job-list-empty"),
      refresh: $("job-list-refresh"),
      form: $("train-form"),
      file: $("train-file"),
      trigger: $("train-trigger"),
      caption: $("train-caption"),
      steps: $("train-steps"),
      submit: $("train-submit"),
      problems: $("train-problems"),
      problemsTitle: $("train-problems-title"),
      problemsList: $("train-problems-list"),
    };
    this.announce = announce;
    this.askForKey = askForKey;
    this.isOpen = false;
    this.jobs = []; // the caller's jobs, newest first, as GET /jobs lists them
    this.listError = null;
    this.listTimer = 0; // the next poll, while a job is active
    this.listLoading = false;
    this.listAgain = false; // asked to refresh while a refresh was under way
    this.listLoaded = false;
    this.selected = null; // the open job: see select()
    this.submitting = false;
    this.frame = 0;
    this.bind();
  }

  // ------------------------------------------------------------ showing and leaving

  /** Show the view with job `jobId` open (null: none); the caller has set the address. */
  show(jobId) {
    if (!this.isOpen) {
      this.isOpen = true;
      this.ui.view.hidden = false;
      this.ui.main.classList.add("jobs-open");
      this.ui.link.setAttribute("aria-current", "page");
      this.refreshList();
    }
    this.ui.title.textContent = "Jobs";
    document.title = "Jobs · omnicoach";
    if ((this.selected && this.selected.id) !== jobId) this.select(jobId);
  }

  /** Leave the view: stop following, polling and fetching; forget the open job. */
  hide() {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.select(null);
    clearTimeout(this.listTimer);
    this.ui.view.hidden = true;
    this.ui.main.classList.remove("jobs-open");
    this.ui.link.removeAttribute("aria-current");
  }

  /** Open job `jobId` from inside the view: a new history entry, so Back returns here. */
  navigate(jobId, initial = null) {
    if (window.location.hash !== jobHash(jobId)) {
      window.history.pushState(null, "", jobHash(jobId));
    }
    this.select(jobId, initial);
    this.renderList(); // its row is marked as the open one
  }

  bind() {
    const ui = this.ui;
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitTraining();
    });
    ui.refresh.addEventListener("click", () => this.refreshList());
    // While the view shows, files dragged over the main column are for the training form (a
    // ZIP), not the chat's image attachment: handled here, before the chat's own listeners.
    const dragged = (event) =>
      this.isOpen && Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
    for (const type of ["dragenter", "dragover"]) {
      ui.main.addEventListener(
        type,
        (event) => {
          if (!dragged(event)) return;
          event.stopPropagation();
          event.preventDefault();
          event.dataTransfer.dropEffect = "copy";
          ui.form.classList.add("dragging");
        },
        true,
      );
    }
    ui.main.addEventListener(
      "dragleave",
      (event) => {
        if (!dragged(event)) return;
        event.stopPropagation();
        if (!ui.main.contains(event.relatedTarget)) ui.form.classList.remove("dragging");
      },
      true,
    );
    ui.main.addEventListener(
      "drop",
      (event) => {
        if (!dragged(event)) return;
        event.stopPropagation();
        event.preventDefault(); // the browser must not open the file instead of the page
        ui.form.classList.remove("dragging");
        this.takeDroppedZip([...event.dataTransfer.files]);
      },
      true,
    );
    // A pasted image would go to the hidden chat composer: not while the view shows.
    document.addEventListener(
      "paste",
      (event) => {
        if (this.isOpen) event.stopPropagation();
      },
      true,
    );
  }

  takeDroppedZip(files) {
    const zip = files.find((file) => /\.zip$/i.test(file.name));
    if (!zip) {
      this.showProblems("Drop a ZIP of pictures (a .zip file).", []);
      return;
    }
    const transfer = new DataTransfer();
    transfer.items.add(zip);
    this.ui.file.files = transfer.files;
    this.hideProblems();
    this.announce(`“${zip.name}” chosen.`);
  }

  // ------------------------------------------------------------ the list

  async refreshList() {
    clearTimeout(this.listTimer);
    this.listTimer = 0;
    if (this.listLoading) {
      this.listAgain = true;
      return;
    }
    this.listLoading = true;
    let body = null;
    let failure = null;
    try {
      body = await api("GET", "jobs?limit=100");
    } catch (error) {
      failure = error;
    } finally {
      this.listLoading = false;
    }
    if (!this.isOpen) return;
    if (this.listAgain) {
      this.listAgain = false;
      this.refreshList();
      return;
    }
    if (body) this.jobs = body.data;
    this.listError = failure;
    this.listLoaded = true;
    this.renderList();
    // Polled only while something may still change: a job queued or running.
    if (this.jobs.some(isActive) && !failure) {
      this.listTimer = setTimeout(() => this.refreshList(), LIST_REFRESH_MS);
    }
  }

  /** Put `job` (fresher than the list's copy: from the open job's events) in the list. */
  updateListed(job) {
    const index = this.jobs.findIndex((listed) => listed.id === job.id);
    const { logs, metrics, dataset, ...fields } = job; // the list holds plain job objects
    if (index >= 0) this.jobs[index] = { ...this.jobs[index], ...fields };
    else this.jobs.unshift(fields);
    this.renderList();
    // A job that became active starts the polling, if it was not running already.
    if (isActive(job) && !this.listTimer && !this.listLoading) this.refreshList();
  }

  renderList() {
    const ui = this.ui;
    const focusedId = document.activeElement?.closest?.(".job-row")?.dataset.id;
    const openId = this.selected && this.selected.id;
    ui.list.replaceChildren(...this.jobs.map((job) => this.listItem(job, job.id === openId)));
    ui.listEmpty.hidden = !this.listLoaded || this.jobs.length > 0 || Boolean(this.listError);
    ui.listError.hidden = !this.listError;
    ui.listError.replaceChildren(...(this.listError ? this.errorContent(this.listError) : []));
    // Rows are redrawn on every refresh: keep keyboard focus on the row it was on.
    if (focusedId) {
      const row = [...ui.list.querySelectorAll(".job-row")].find((r) => r.dataset.id === focusedId);
      if (row) row.focus();
    }
  }

  listItem(job, current) {
    const row = el(
      "a",
      {
        class: "job-row",
        href: jobHash(job.id),
        "aria-current": current ? "page" : null,
        onclick: (event) => {
          if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
          event.preventDefault();
          if (!current) this.navigate(job.id);
          this.focusDetail();
        },
      },
      el(
        "span",
        { class: "job-row-head" },
        el("span", { class: "job-kind" }, job.kind),
        statusBadge(job),
      ),
      progressBar(job.progress, `Progress of ${job.kind}`),
      el("span", { class: "job-row-meta" }, "Created ", timeNode(job.created_at)),
    );
    row.dataset.id = job.id;
    return el("li", {}, row);
  }

  // ------------------------------------------------------------ one job

  /**
   * Open job `jobId` (null: none): show what is known (`initial`, e.g. the answer that created
   * it), read it with its logs and metrics, then follow its events until it ends.
   */
  async select(jobId, initial = null) {
    const previous = this.selected;
    if (previous) {
      previous.controller.abort(); // its event stream and its artifact fetches
      for (const entry of previous.images.values()) {
        if (entry.url) URL.revokeObjectURL(entry.url);
      }
    }
    this.selected = null;
    if (!jobId) {
      this.ui.detail.hidden = true;
      this.ui.detail.replaceChildren();
      return;
    }
    const d = {
      id: jobId,
      job: initial,
      logs: [],
      metrics: new Map(), // name → Map(step → value)
      images: new Map(), // artifact name → {status: "loading" | "ready" | "failed", url, node}
      controller: new AbortController(),
      loadError: null,
      live: null, // null | "live" | {error}: how following the events goes
      actionError: null, // a failed cancel or download
      nodes: null,
      shownArtifacts: "",
    };
    this.selected = d;
    this.buildDetail(d);
    this.renderDetail();
    try {
      const full = await api("GET", jobPath(jobId));
      if (this.selected !== d) return;
      d.job = { ...d.job, ...full }; // keeps what only `initial` knew (the ZIP's dataset)
      d.logs = full.logs.slice(-MAX_LOG_LINES);
      for (const [name, points] of Object.entries(full.metrics || {})) {
        for (const point of points) addPoint(d, name, point.step, point.value);
      }
    } catch (error) {
      if (this.selected !== d) return;
      d.loadError = error;
      this.renderDetail();
      return;
    }
    this.renderDetail();
    this.follow(d);
  }

  /** Follow the open job's events until it ends (the stream's `done`) or the view leaves. */
  async follow(d) {
    if (!d.job || !isActive(d.job)) return;
    d.live = "live";
    this.renderDetail();
    try {
      await streamEvents(jobPath(d.id, "/events"), {
        signal: d.controller.signal,
        // The stream starts with every log line there is: they replace the last 100 read.
        onOpen: () => {
          d.logs = [];
        },
        onEvent: (name, data) => this.onEvent(d, name, data),
      });
      if (this.selected === d && d.live === "live") d.live = null; // ended without `done`
    } catch (error) {
      if (d.controller.signal.aborted || this.selected !== d) return;
      d.live = { error };
    }
    this.scheduleRender();
  }

  onEvent(d, name, data) {
    if (this.selected !== d) return;
    if (name === "log") {
      d.logs.push(data);
      if (d.logs.length > MAX_LOG_LINES) d.logs.splice(0, d.logs.length - MAX_LOG_LINES);
    } else if (name === "metric") {
      addPoint(d, data.name, data.step, data.value);
    } else if (name === "job" || name === "done") {
      const before = d.job && d.job.status;
      d.job = { ...d.job, ...data };
      if (before !== data.status) {
        this.announce(`Job ${(STATUS_TEXT[data.status] || data.status).toLowerCase()}.`);
      }
      if (name === "done") d.live = null;
      this.updateListed(d.job);
    }
    this.scheduleRender();
  }

  async cancel() {
    const d = this.selected;
    if (!d || !d.job) return;
    d.actionError = null;
    d.nodes.cancel.disabled = true;
    try {
      const job = await api("POST", jobPath(d.id, "/cancel"));
      if (this.selected !== d) return;
      d.job = { ...d.job, ...job };
      this.updateListed(d.job);
      this.announce(job.status === "cancelled" ? "Job cancelled." : "Cancelling the job…");
    } catch (error) {
      if (this.selected !== d) return;
      d.actionError = error;
    }
    this.renderDetail();
  }

  /** Keyboard focus to the view: the open job's heading, else the training form's. */
  focus() {
    if (this.selected) this.focusDetail();
    else document.getElementById("train-heading").focus();
  }

  focusDetail() {
    const heading = this.ui.detail.querySelector("h2");
    if (heading) {
      heading.focus();
      heading.scrollIntoView({ block: "start" });
    }
  }

  /** The open job's parts, made once: renderDetail() updates them. */
  buildDetail(d) {
    const n = {};
    n.heading = el("h2", { id: "job-title", tabindex: "-1" }, "Job");
    n.status = el("span", { class: "job-status" });
    n.meta = el("p", { class: "job-meta" });
    n.bar = progressBar(0, "Progress");
    n.percent = el("span", { class: "job-percent" });
    n.cancel = el(
      "button",
      { type: "button", class: "text-button job-cancel", onclick: () => this.cancel() },
      icon("stop"),
      "Cancel job",
    );
    n.progress = el("div", { class: "job-progress-row" }, n.bar, n.percent, n.cancel);
    n.live = el("p", { class: "job-live", role: "status" });
    n.error = el("div", { class: "job-error", role: "alert" });
    n.params = el("dl", { class: "job-params" });
    n.charts = el("div", { class: "job-charts" });
    n.artifacts = el("div", { class: "job-artifacts" });
    n.result = el("pre", { class: "job-result" });
    // Not a live region: lines may come several a second; status changes are announced.
    n.log = el("ol", { class: "job-log", role: "log", "aria-live": "off", tabindex: "0" });
    const section = (title, ...content) =>
      el("section", { class: "job-section" }, el("h3", {}, title), ...content);
    n.sections = {
      params: section("Parameters", n.params),
      charts: section("Metrics", n.charts),
      artifacts: section("Artifacts", n.artifacts),
      result: section("Result", n.result),
      log: section("Log", n.log),
    };
    n.log.setAttribute("aria-label", "Job log");
    n.body = el(
      "div",
      { class: "job-body" },
      n.meta,
      n.progress,
      n.live,
      n.error,
      ...Object.values(n.sections),
    );
    const back = el("a", { class: "text-button job-back", href: "#jobs" }, "All jobs");
    back.addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      this.navigate(null);
      this.ui.view.scrollTop = 0;
    });
    d.nodes = n;
    this.ui.detail.replaceChildren(
      el(
        "div",
        { class: "job-detail-head" },
        el("div", { class: "job-title" }, n.heading, n.status),
        back,
      ),
      n.body,
    );
    this.ui.detail.hidden = false;
  }

  scheduleRender() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.renderDetail();
      });
    }
  }

  renderDetail() {
    const d = this.selected;
    if (!d) return;
    const n = d.nodes;
    const job = d.job;
    n.heading.textContent = job ? job.kind : "Job";
    n.heading.title = d.id;
    if (!job) {
      n.status.replaceChildren();
      n.meta.textContent = d.loadError ? "" : "Loading the job…";
      const failure = d.loadError ? describe(d.loadError) : "";
      update(n.error, failure, () => (d.loadError ? this.errorContent(d.loadError, d) : []));
      n.error.hidden = !d.loadError;
      for (const part of [n.progress, n.live, ...Object.values(n.sections)]) part.hidden = true;
      return;
    }
    n.status.replaceChildren(statusBadge(job));
    n.meta.replaceChildren(...metaParts(job));

    // Progress, and Cancel while the job may still run. Parts made once, so that the button
    // keeps keyboard focus while the job reports.
    n.progress.hidden = false;
    const active = isActive(job);
    setProgress(n.bar, job.progress);
    n.percent.textContent = `${Math.round((Number(job.progress) || 0) * 100)} %`;
    n.cancel.hidden = !active;
    n.cancel.disabled = Boolean(job.cancel_requested);
    n.cancel.lastChild.textContent = job.cancel_requested ? "Cancelling…" : "Cancel job";

    // Live regions below are only rewritten when what they say changes: each change is read.
    n.live.hidden = !d.live;
    const live = d.live === "live" ? "live" : d.live ? `lost: ${d.live.error.message}` : "";
    update(n.live, live, () => {
      if (d.live === "live") {
        return [el("span", { class: "live-dot", "aria-hidden": "true" }), "Following live"];
      }
      if (!d.live) return [];
      const reconnect = () => {
        d.live = null;
        this.navigateAgain();
      };
      return [
        `Live updates stopped: ${d.live.error.message}`,
        el("button", { type: "button", class: "text-button", onclick: reconnect }, "Reconnect"),
      ];
    });

    const failure = [job.error || "", d.actionError ? describe(d.actionError) : ""].join("\n");
    update(n.error, failure, () => [
      ...(job.error ? [el("p", {}, el("strong", {}, "The job failed: "), job.error)] : []),
      ...(d.actionError ? this.errorContent(d.actionError) : []),
    ]);
    n.error.hidden = !job.error && !d.actionError;

    renderParams(n.params, job.params || {});
    n.sections.params.hidden = Object.keys(job.params || {}).length === 0;
    if (job.dataset) {
      n.params.append(
        el("dt", {}, "dataset"),
        el("dd", {}, `${job.dataset.pictures} pictures (${job.dataset.layout})`),
      );
    }

    n.sections.charts.hidden = d.metrics.size === 0 && !active;
    n.charts.replaceChildren(
      ...(d.metrics.size
        ? [...d.metrics].map(([name, points]) => chartFigure(name, points))
        : [el("p", { class: "muted" }, "No metrics yet.")]),
    );

    this.renderArtifacts(d);

    n.sections.result.hidden = job.result === null || job.result === undefined;
    n.result.textContent = n.sections.result.hidden ? "" : JSON.stringify(job.result, null, 2);

    n.sections.log.hidden = d.logs.length === 0 && !active;
    const follow = n.log.scrollHeight - n.log.scrollTop - n.log.clientHeight < 40;
    n.log.replaceChildren(
      ...(d.logs.length
        ? d.logs.map((log) => el("li", {}, timeNode(log.created_at, true), " ", log.line))
        : [el("li", { class: "muted" }, "No log lines yet.")]),
    );
    if (follow) n.log.scrollTop = n.log.scrollHeight; // keep showing the newest lines
  }

  /** Reload the open job after its events stopped (the Reconnect button). */
  navigateAgain() {
    const d = this.selected;
    if (d) this.select(d.id, d.job);
  }

  /** Images are fetched with the key once each and shown; other artifacts are downloads. */
  renderArtifacts(d) {
    const n = d.nodes;
    const names = d.job.artifacts || [];
    n.sections.artifacts.hidden = names.length === 0 && !isActive(d.job);
    const shown = names.join("\n");
    if (shown === d.shownArtifacts && names.length) return; // unchanged: keep focus and images
    d.shownArtifacts = shown;
    if (!names.length) {
      n.artifacts.replaceChildren(el("p", { class: "muted" }, "None yet."));
      return;
    }
    const images = names.filter((name) => IMAGE_ARTIFACT.test(name));
    const files = names.filter((name) => !IMAGE_ARTIFACT.test(name));
    const gallery = el(
      "div",
      { class: "artifact-images" },
      ...images.map((name) => this.artifactImage(d, name)),
    );
    const downloads = el(
      "ul",
      { class: "artifact-files" },
      ...files.map((name) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "text-button artifact-download",
              "aria-label": `Download ${name}`,
              onclick: (event) => this.download(d, name, event.currentTarget),
            },
            icon("download"),
            name,
          ),
        ),
      ),
    );
    n.artifacts.replaceChildren(
      ...(images.length ? [gallery] : []),
      ...(files.length ? [downloads] : []),
    );
  }

  artifactImage(d, name) {
    let entry = d.images.get(name);
    if (entry) return entry.node;
    const img = el("img", { alt: `Artifact ${name}`, decoding: "async" });
    const caption = el("figcaption", {}, name);
    const frame = el("span", { class: "artifact-frame" }, img);
    const node = el("figure", { class: "artifact-image loading" }, frame, caption);
    node.dataset.name = name;
    entry = { status: "loading", url: null, node };
    d.images.set(name, entry);
    fetchBlob(artifactPath(d.id, name), { signal: d.controller.signal })
      .then((blob) => {
        if (d.controller.signal.aborted) return;
        entry.url = URL.createObjectURL(blob);
        entry.status = "ready";
        img.addEventListener(
          "load",
          () => {
            // Tiny samples (a test model draws 16 px) stay sharp when shown larger.
            if (img.naturalWidth < 128) img.classList.add("pixelated");
          },
          { once: true },
        );
        img.src = entry.url;
        entry.node.classList.remove("loading");
      })
      .catch((error) => {
        if (d.controller.signal.aborted) return;
        entry.status = "failed";
        entry.node.classList.replace("loading", "failed");
        // Shown in its place; the next change of the artifact list tries again.
        caption.replaceChildren(`${name}: could not be loaded (${error.message})`);
        d.images.delete(name);
      });
    return entry.node;
  }

  async download(d, name, button) {
    d.actionError = null;
    button.disabled = true;
    try {
      const blob = await fetchBlob(artifactPath(d.id, name), { signal: d.controller.signal });
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: name, class: "visually-hidden" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000); // the download has started by then
    } catch (error) {
      if (d.controller.signal.aborted) return;
      d.actionError = error;
      this.renderDetail();
    } finally {
      button.disabled = false;
    }
  }

  /** An API failure as inline content: the message, and the way out where there is one. */
  errorContent(error, d = null) {
    const parts = [el("p", {}, describe(error))];
    const button = (text, onclick) =>
      el("button", { type: "button", class: "text-button", onclick }, text);
    if (error.status === 401) parts.push(button("Enter API key", () => this.askForKey()));
    else if (d && error.status !== 404) parts.push(button("Retry", () => this.select(d.id)));
    return parts;
  }

  // ------------------------------------------------------------ the training form

  async submitTraining() {
    if (this.submitting) return;
    const ui = this.ui;
    const file = ui.file.files[0];
    const trigger = ui.trigger.value.trim();
    const steps = Number(ui.steps.value || 300);
    const wrong = [];
    if (!file) {
      wrong.push([ui.file, "Choose a ZIP of pictures."]);
    } else if (!/\.zip$/i.test(file.name)) {
      wrong.push([ui.file, `“${file.name}” is not a ZIP file.`]);
    }
    if (!TRIGGER.test(trigger)) {
      const rule = "The trigger word must be one word of 2–40 letters, digits, - or _.";
      wrong.push([ui.trigger, rule]);
    }
    if (!Number.isInteger(steps) || steps < 1 || steps > 5000) {
      wrong.push([ui.steps, "Steps must be a whole number from 1 to 5000."]);
    }
    for (const input of [ui.file, ui.trigger, ui.steps]) input.removeAttribute("aria-invalid");
    if (wrong.length) {
      for (const [input] of wrong) input.setAttribute("aria-invalid", "true");
      this.showProblems("Check the form:", wrong.map(([, text]) => text));
      wrong[0][0].focus();
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("trigger", trigger);
    if (ui.caption.value.trim()) form.append("caption_template", ui.caption.value.trim());
    form.append("steps", String(steps));

    this.setSubmitting(true);
    let job;
    try {
      job = await postForm("train", form);
    } catch (error) {
      this.setSubmitting(false);
      if (error.code === "invalid_zip" && error.problems && error.problems.length) {
        ui.file.setAttribute("aria-invalid", "true");
        const count = error.problems.length;
        const counted = `${count} ${count === 1 ? "problem" : "problems"}`;
        this.showProblems(`This ZIP cannot be used for training (${counted}):`, error.problems);
      } else {
        // The field the server names ("trigger", or "params.trigger" once the job checked it).
        const param = String(error.param || "").replace(/^params\./, "");
        const input = { file: ui.file, trigger: ui.trigger, steps: ui.steps }[param];
        if (input) input.setAttribute("aria-invalid", "true");
        this.showProblems(describe(error), []);
      }
      return;
    }
    this.setSubmitting(false);
    this.hideProblems();
    ui.form.reset();
    const pictures = job.dataset ? `, on ${job.dataset.pictures} pictures` : "";
    this.announce(`Training queued${pictures}.`);
    if (!this.isOpen) return;
    this.updateListed(job);
    this.navigate(job.id, job);
    this.focusDetail();
  }

  setSubmitting(on) {
    this.submitting = on;
    this.ui.submit.disabled = on;
    this.ui.submit.textContent = on ? "Uploading…" : "Start training";
    this.ui.form.setAttribute("aria-busy", String(on));
  }

  showProblems(title, problems) {
    const ui = this.ui;
    ui.problemsTitle.textContent = title;
    ui.problemsList.replaceChildren(...problems.map((problem) => el("li", {}, problem)));
    ui.problemsList.hidden = problems.length === 0;
    ui.problems.hidden = false;
  }

  hideProblems() {
    this.ui.problems.hidden = true;
    for (const input of [this.ui.file, this.ui.trigger, this.ui.steps]) {
      input.removeAttribute("aria-invalid");
    }
  }
}

// ---------------------------------------------------------------- small parts

/** A failed request in the user's words, with the server's own message. */
function describe(error) {
  if (error.status === 401) return "This server needs an API key, or the one given is wrong.";
  if (error.status === 404) return "This job does not exist (or belongs to another key).";
  if (error.kind === "network") return "Could not reach the server. Check that it is running.";
  if (!error.message) return "Something went wrong.";
  // The server's messages start in lower case ("the ZIP cannot…"): here they are sentences.
  return error.message.charAt(0).toUpperCase() + error.message.slice(1);
}

function addPoint(d, name, step, value) {
  if (!d.metrics.has(name)) d.metrics.set(name, new Map());
  d.metrics.get(name).set(step, value); // a point sent twice (read, then streamed) counts once
}

function statusBadge(job) {
  const text =
    job.cancel_requested && isActive(job) ? "Cancelling" : STATUS_TEXT[job.status] || job.status;
  const badge = el("span", { class: `job-badge status-${job.status}` }, text);
  badge.dataset.status = job.status;
  return badge;
}

function progressBar(fraction, label) {
  const bar = el(
    "span",
    {
      class: "progress",
      role: "progressbar",
      "aria-label": label,
      "aria-valuemin": "0",
      "aria-valuemax": "100",
    },
    el("span", { class: "progress-fill" }),
  );
  setProgress(bar, fraction);
  return bar;
}

function setProgress(bar, fraction) {
  const percent = Math.round(Math.min(1, Math.max(0, Number(fraction) || 0)) * 100);
  bar.setAttribute("aria-valuenow", String(percent));
  bar.firstChild.style.width = `${percent}%`; // set from script, which the page's CSP allows
}

/**
 * Rewrite `node`'s content with build() only when `key` (what it says) changed: a live region
 * is read again on every change, and a button made again would lose keyboard focus.
 */
function update(node, key, build) {
  if (node.dataset.key === key) return;
  node.dataset.key = key;
  node.replaceChildren(...build());
}

/** A <time> for unix seconds: the date and time, or (clock) the time of day only. */
function timeNode(seconds, clock = false) {
  if (seconds === null || seconds === undefined) return "";
  const date = new Date(seconds * 1000);
  const text = clock
    ? date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  return el("time", { datetime: date.toISOString() }, text);
}

function metaParts(job) {
  const day = (seconds) => new Date(seconds * 1000).toDateString();
  // Later times on the day the job was created show the time of day only.
  const later = (seconds) => timeNode(seconds, day(seconds) === day(job.created_at));
  const parts = ["Created ", timeNode(job.created_at)];
  if (job.started_at) parts.push(" · started ", later(job.started_at));
  if (job.finished_at) parts.push(" · finished ", later(job.finished_at));
  return parts;
}

function renderParams(list, params) {
  const rows = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue; // not given: the job's default
    const shown =
      value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
    rows.push(el("dt", {}, name), el("dd", {}, shown));
  }
  list.replaceChildren(...rows);
}

/** Numbers for axis labels: four significant digits, no trailing zeros. */
function short(value) {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  return String(Number(value.toPrecision(4)));
}

function svgNode(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function label(x, y, anchor, text) {
  return svgNode("text", { class: "chart-label", x, y, "text-anchor": anchor }, text);
}

/**
 * One metric series as a small line chart: inline SVG, y from the series' min to its max,
 * x from its first step to its last, the four labelled on the axes.
 */
function chartFigure(name, pointsByStep) {
  const points = [...pointsByStep].sort((a, b) => a[0] - b[0]);
  const steps = points.map(([step]) => step);
  const values = points.map(([, value]) => value).filter(Number.isFinite);
  const [x0, x1] = [steps[0], steps[steps.length - 1]];
  const [y0, y1] = values.length ? [Math.min(...values), Math.max(...values)] : [0, 0];
  const width = 400;
  const height = 180;
  const box = { left: 56, right: width - 12, top: 10, bottom: height - 26 };
  // A flat series or a single point sits in the middle of its axis.
  const along = (value, low, high, from, to) =>
    high === low ? (from + to) / 2 : from + ((value - low) / (high - low)) * (to - from);
  const x = (step) => along(step, x0, x1, box.left, box.right);
  const y = (value) => along(value, y0, y1, box.bottom, box.top);
  const drawn = points.filter(([, value]) => Number.isFinite(value));
  const coordinates = drawn.map(([step, value]) => `${x(step).toFixed(1)},${y(value).toFixed(1)}`);
  const last = drawn[drawn.length - 1];

  const svg = svgNode("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label":
      `${name}: ${drawn.length} points, steps ${x0} to ${x1}, ` +
      `from ${short(y0)} to ${short(y1)}` +
      (last ? `, last ${short(last[1])}` : ""),
  });
  svg.append(
    svgNode("path", {
      class: "chart-axes",
      d: `M${box.left},${box.top} V${box.bottom} H${box.right}`,
    }),
    label(box.left - 6, box.top + 8, "end", short(y1)), // the y axis: max at the top…
    label(box.left - 6, box.bottom, "end", short(y0)), // …min at the bottom
    label(box.left, height - 6, "start", short(x0)), // the x axis: the first step…
    label(box.right, height - 6, "end", short(x1)), // …and the last
    svgNode("polyline", { class: "chart-line", points: coordinates.join(" ") }),
  );
  if (last) {
    svg.append(svgNode("circle", { class: "chart-last", cx: x(last[0]), cy: y(last[1]), r: 3 }));
  }
  const caption = el(
    "figcaption",
    {},
    el("span", { class: "chart-name" }, name),
    last ? el("span", { class: "chart-value" }, `${short(last[1])} at step ${last[0]}`) : null,
  );
  const figure = el("figure", { class: "job-chart" }, caption, svg);
  figure.dataset.metric = name;
  return figure;
}
