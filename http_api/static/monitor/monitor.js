// The monitor page's controller: what is polled and how often, the event log's long-poll tail,
// the selected job, the actions (retry, cancel, purge) and the token dialog.

import { Api, query } from "./api.js";
import { gantt, rates } from "./charts.js";
import { clock, el, fill, num, pick } from "./format.js";
import { ENDED, Timelines, detailOf, jobOf, overviewOf } from "./model.js";
import { renderDetail, renderEvents, renderJobs, renderOverview } from "./views.js";

const JOBS_EVERY_MS = 3000; // the dashboard's own poll interval
const DETAIL_EVERY_MS = 2000; // 30 a minute: half the per-job rate limit
const OVERVIEW_EVERY_MS = 5000;
const EVENTS_WAIT_SECONDS = 20;
const TAIL_SPACING_MS = 500; // a busy event log is read at most twice a second
const MAX_EVENTS = 2000;
const GANTT_JOBS = 15;
const RATE_SAMPLES = 30;

const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000;

const state = {
  jobs: [],
  selected: new URLSearchParams(location.hash.slice(1)).get("job") || null,
  detail: null,
  events: [],
  cursor: null,
  timelines: new Timelines(),
  samples: new Map(), // events domain -> [{t, rows}] of the selected job
  profiles: new Set(),
};

const api = new Api(askToken);

// ---- connection state ---------------------------------------------------------------------------
function connection(text, kind) {
  const pill = $("conn-status");
  pill.textContent = text;
  pill.className = `pill ${kind}`;
  if (kind === "ok") $("updated-at").textContent = `updated ${clock(now())}`;
}

function note(id, text) {
  const node = $(id);
  node.hidden = !text;
  node.textContent = text || "";
}

// ---- polling --------------------------------------------------------------------------------------
class Loop {
  /** `fn` every `everyMs`; kicked (an event came), again after `spacingMs` at the soonest. */
  constructor(name, fn, everyMs, spacingMs) {
    Object.assign(this, { name, fn, everyMs, spacingMs, timer: null, busy: false, again: false, last: 0 });
  }

  start() {
    this.run();
  }

  /** Run again soon (after what runs now). */
  kick(delayMs = 150) {
    if (this.busy) {
      this.again ||= "spaced";
      return;
    }
    clearTimeout(this.timer);
    const spacing = this.spacingMs - (Date.now() - this.last);
    this.timer = setTimeout(() => this.run(), Math.max(delayMs, spacing));
  }

  /** Run now (an operator's click), or right after the run under way. */
  soon() {
    if (this.busy) this.again = "now";
    else this.run();
  }

  async run() {
    clearTimeout(this.timer);
    this.busy = true;
    this.last = Date.now();
    let wait = this.everyMs;
    try {
      await this.fn();
      connection("live", "ok");
    } catch (error) {
      wait = failed(error, wait);
      if (error.retryAfter) this.again = false; // the server named its time
    } finally {
      this.busy = false;
      if (this.again) {
        wait = this.again === "now" ? 0 : this.spacingMs;
        this.again = false;
      }
      this.timer = setTimeout(() => this.run(), wait);
    }
  }
}

function failed(error, wait) {
  if (error.retryAfter) {
    connection(`rate limited: again in ${error.retryAfter} s`, "warn");
    return error.retryAfter * 1000;
  }
  if (error.status) {
    connection(`${error.status} ${error.code}`, "warn");
    console.warn(error);
    return wait * 2;
  }
  connection("offline: retrying", "bad");
  return Math.max(wait, 3000);
}

// ---- jobs -----------------------------------------------------------------------------------------
function filters() {
  return {
    state: $("filter-state").value,
    profile: $("filter-profile").value,
    max_age_seconds: $("filter-age").value,
  };
}

async function loadJobs() {
  const { data } = await api.get(`/api/ops/jobs${query({ ...filters(), limit: 100 })}`);
  const jobs = (Array.isArray(data) ? data : pick(data, ["jobs"], [])).map(jobOf);
  jobs.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0));
  state.jobs = jobs;
  for (const job of jobs) addProfile(job.profile);
  renderJobs(jobs, state.selected, select);
  drawGantt();
}

function addProfile(profile) {
  if (!profile || state.profiles.has(profile)) return;
  state.profiles.add(profile);
  const select = $("filter-profile");
  select.append(el("option", { value: profile }, profile));
}

async function loadProfiles() {
  try {
    const { data } = await api.get("/openapi.json");
    const names = pick(data?.components?.schemas?.Profile, ["enum"], []);
    for (const name of names) addProfile(name);
  } catch (error) {
    console.info("profiles come from the jobs seen", error);
  }
}

function select(id) {
  if (!id || id === state.selected) return;
  state.selected = id;
  state.samples = new Map();
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`);
  note("action-result", "");
  renderJobs(state.jobs, state.selected, select);
  drawGantt();
  showEvents();
  detailLoop.soon();
}

// ---- the selected job ----------------------------------------------------------------------------
async function loadDetail() {
  const id = state.selected;
  if (!id) return;
  let raw;
  try {
    raw = (await api.get(`/api/ops/jobs/${encodeURIComponent(id)}`)).data;
  } catch (error) {
    if (error.status !== 404 && error.status !== 410) throw error;
    raw = { job_id: id, state: "gone", error: { code: error.code, message: error.message } };
  }
  if (id !== state.selected) return;
  const detail = detailOf(raw);
  state.detail = detail;
  renderDetail(detail, {
    segments: state.timelines.segments(id),
    retries: state.timelines.retriesByStage(id),
    now: now(),
  });
  drawRates(detail);
  buttons(detail.job);
}

function drawRates(detail) {
  const events = detail.stages.find((s) => s.key === "events");
  const running = !ENDED.has(detail.job.state) && detail.job.state !== "gone";
  const t = now();
  const bars = (events?.domains || []).map((domain) => {
    const samples = state.samples.get(domain.key) || [];
    if (domain.rows !== null) samples.push({ t, rows: domain.rows });
    while (samples.length > RATE_SAMPLES) samples.shift();
    state.samples.set(domain.key, samples);
    const history = [];
    for (let i = 1; i < samples.length; i += 1) {
      const dt = samples[i].t - samples[i - 1].t;
      history.push(dt > 0 ? Math.max(0, (samples[i].rows - samples[i - 1].rows) / dt) : 0);
    }
    let secs = domain.seconds ?? events.seconds;
    if (secs === null && events.startedAt && events.finishedAt) secs = events.finishedAt - events.startedAt;
    const average = secs ? (domain.rows || 0) / secs : null;
    const live = running && history.length > 0;
    return { domain: domain.key, rows: domain.rows, rate: live ? history[history.length - 1] : average, history, live };
  });
  fill("rates-chart", rates(bars));
}

function buttons(job) {
  const active = job.state === "queued" || job.state === "started";
  const failedDomains = (state.detail?.failedDomains || []).length > 0;
  const set = (id, enabled, why) => {
    const button = $(id);
    button.disabled = !enabled;
    button.title = enabled ? "" : why;
  };
  set("btn-retry", job.state === "failed" || (job.state === "finished" && failedDomains), "only a failed job (or one with failed domains) can be retried");
  set("btn-cancel", active, "only a queued or running job can be cancelled");
  set("btn-purge", !active && job.state !== "gone", "cancel a running job before purging it");
}

// ---- actions -------------------------------------------------------------------------------------
const ACTIONS = {
  retry: {
    ask: (id) => `Retry job ${id} from its failed stage? Finished stages and committed batches are kept.`,
    call: (id) => api.call("POST", `/api/ops/jobs/${encodeURIComponent(id)}/retry`),
    done: (data) => `Retry accepted: the job is ${pick(data, ["state", "status"], "queued")} again${pick(data, ["stage"]) ? ` from ${pick(data, ["stage"])}` : ""}.`,
  },
  cancel: {
    ask: (id) => `Cancel job ${id}? Its checkpoints are released; it cannot be resumed.`,
    call: (id) => api.call("DELETE", `/api/trace/job/${encodeURIComponent(id)}`),
    done: (data) => `Cancelled: the job is ${pick(data, ["state", "status"], "cancelled")}.`,
  },
  purge: {
    ask: (id) => `Purge job ${id}? Every key it holds in Redis is released: its status and result are gone.`,
    call: (id) => api.call("POST", `/api/ops/jobs/${encodeURIComponent(id)}/purge`),
    done: (data) => `Purged: ${num(pick(data, ["released_keys", "keys"])) ?? "?"} keys released.`,
  },
};

function confirmDialog(text) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const finish = (answer) => {
      $("confirm-yes").onclick = $("confirm-no").onclick = dialog.oncancel = null;
      dialog.close();
      resolve(answer);
    };
    $("confirm-yes").onclick = () => finish(true);
    $("confirm-no").onclick = () => finish(false);
    dialog.oncancel = () => finish(false);
    dialog.showModal();
    $("confirm-no").focus();
  });
}

async function act(name) {
  const id = state.selected;
  const action = ACTIONS[name];
  if (!id || !action || !(await confirmDialog(action.ask(id)))) return;
  const result = $("action-result");
  result.hidden = false;
  result.className = "pending";
  result.dataset.action = name;
  result.dataset.outcome = "pending";
  result.textContent = `${name}: sending…`;
  try {
    const { status, data } = await action.call(id);
    result.className = "ok";
    result.dataset.outcome = "ok";
    result.textContent = `${status} · ${action.done(data || {})}`;
  } catch (error) {
    result.className = "error";
    result.dataset.outcome = "error";
    result.textContent = `${name} refused: ${error.status || ""} ${error.code || ""} ${error.message}`;
  }
  detailLoop.soon();
  jobsLoop.soon();
}

// ---- overview ------------------------------------------------------------------------------------
async function loadOverview() {
  const { data } = await api.get("/api/ops/overview");
  renderOverview(overviewOf(data || {}), now());
}

// ---- the event log ---------------------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function tail() {
  for (;;) {
    const began = Date.now();
    try {
      const path =
        state.cursor === null
          ? `/api/trace/job-events${query({ count: 1000 })}`
          : `/api/trace/job-events${query({ after: state.cursor, wait: EVENTS_WAIT_SECONDS, count: 1000 })}`;
      const { data } = await api.get(path);
      const events = pick(data, ["events"], []);
      state.cursor = pick(data, ["next"], state.cursor) ?? "0";
      if (events.length) took(events);
      connection("live", "ok");
    } catch (error) {
      await sleep(failed(error, 3000));
    }
    await sleep(Math.max(0, TAIL_SPACING_MS - (Date.now() - began)));
  }
}

function took(events) {
  for (const event of events) {
    state.events.push(event);
    state.timelines.add(event);
    if (event.profile) addProfile(event.profile);
  }
  if (state.events.length > MAX_EVENTS) state.events.splice(0, state.events.length - MAX_EVENTS);
  showEvents();
  jobsLoop.kick();
  if (events.some((e) => e.job === state.selected)) detailLoop.kick();
}

function showEvents() {
  renderEvents(state.events, { only: $("events-selected-only").checked ? state.selected : null, onSelect: select });
}

// ---- the Gantt strip ------------------------------------------------------------------------------
function drawGantt() {
  const t = now();
  const rows = state.jobs.slice(0, GANTT_JOBS).map((job) => {
    let segments = state.timelines.segments(job.id);
    if (!segments.length && job.createdAt) {
      const end = ENDED.has(job.state) && job.elapsed !== null ? job.createdAt + job.elapsed : null;
      segments = [{ stage: job.stage || "queued", start: job.createdAt, end, state: job.state }];
    }
    return { id: job.id, label: `${job.id.slice(0, 12)} ${job.profile}`, state: job.state, segments };
  });
  fill("gantt", gantt(rows, { now: t, selected: state.selected, onSelect: select, width: $("gantt").clientWidth || 900 }));
}

// ---- the token ------------------------------------------------------------------------------------
function askToken(reason) {
  const dialog = $("token-dialog");
  $("token-reason").textContent = `${reason ? `${reason} ` : ""}The API needs its bearer token (TRACE_API_TOKEN). It is kept in this tab only.`;
  connection("token needed", "warn");
  return new Promise((resolve) => {
    $("token-form").onsubmit = (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      dialog.close();
      $("token-input").value = "";
      resolve(token);
    };
    if (!dialog.open) dialog.showModal();
    $("token-input").focus();
  });
}

// ---- start ----------------------------------------------------------------------------------------
// At most about four requests a second while events pour in (the event log twice, the list once,
// the selected job every other second), one when all is quiet: within the job reads' rate limit
// of an address (300 a minute by default; the per-job one, 60, for the selected job's timeline).
const jobsLoop = new Loop("jobs", loadJobs, JOBS_EVERY_MS, 1000);
const detailLoop = new Loop("detail", loadDetail, DETAIL_EVERY_MS, DETAIL_EVERY_MS);
const overviewLoop = new Loop("overview", loadOverview, OVERVIEW_EVERY_MS, OVERVIEW_EVERY_MS);

function start() {
  for (const id of ["filter-state", "filter-profile", "filter-age"]) $(id).addEventListener("change", () => jobsLoop.kick(0));
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("events-selected-only").addEventListener("change", showEvents);
  for (const button of document.querySelectorAll("[data-action]")) button.addEventListener("click", () => act(button.dataset.action));
  $("btn-token").addEventListener("click", () => api.needToken("").then(() => jobsLoop.kick(0)));
  $("token-dialog").addEventListener("cancel", (e) => e.preventDefault()); // the page needs it
  window.addEventListener("resize", drawGantt);
  setInterval(drawGantt, 1000); // running bars grow with the clock
  loadProfiles().finally(() => {
    tail();
    jobsLoop.start();
    overviewLoop.start();
    detailLoop.start();
  });
}

start();
