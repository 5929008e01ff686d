// What the page knows, read defensively from the API's answers: jobs (the operator list, or
// status documents), a job's stage timeline, the service overview, and each job's stages on a
// time axis as the job event log tells them.

import { epoch, num, pick, stageKey } from "./format.js";

export const STAGE_ORDER = ["seed-resolve", "lineage", "events", "aggregation"];
export const ENDED = new Set(["finished", "failed", "cancelled", "expired", "purged"]);
const TERMINAL_EVENTS = new Set(["failed", "cancelled", "finished", "purged"]);

function list(value) {
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") {
    return Object.entries(value).map(([name, v]) =>
      v && typeof v === "object" && !Array.isArray(v) ? { name, ...v } : { name, value: v },
    );
  }
  return [];
}

export function errorOf(value) {
  if (!value) return null;
  if (typeof value === "string") return { code: "", stage: "", message: value };
  return {
    code: pick(value, ["code"], ""),
    stage: stageKey(pick(value, ["stage"], "")),
    message: pick(value, ["message", "reason"], ""),
  };
}

export function qualityOf(value) {
  if (!value) return null;
  if (typeof value === "string") return { status: value, reasons: [], failedRanges: [] };
  const reasons = pick(value, ["reasons", "why"], []);
  return {
    status: pick(value, ["status", "state"], "unknown"),
    reasons: Array.isArray(reasons) ? reasons : [String(reasons)],
    failedRanges: pick(value, ["failed_ranges"], []),
    observed: num(pick(value, ["observed_rows"])),
    maxRows: num(pick(value, ["max_rows"])),
  };
}

function rowsOfStages(stages) {
  const all = list(stages).map((s) => num(pick(s, ["rows"])));
  return all.some((n) => n !== null) ? all.reduce((a, n) => a + (n || 0), 0) : null;
}

/** One job of the list (an operator list entry or a status document). */
export function jobOf(raw) {
  const cids = pick(raw, ["cids", "cid_count", "lots"]);
  const rows = num(pick(raw, ["rows", "rows_written"]));
  return {
    id: String(pick(raw, ["job_id", "id"], "")),
    kind: pick(raw, ["kind", "job_kind"], ""),
    profile: pick(raw, ["profile"], ""),
    state: pick(raw, ["state", "status"], "unknown"),
    stage: stageKey(pick(raw, ["stage", "current_stage"], "")),
    cids: Array.isArray(cids) ? cids.length : num(cids),
    rows: rows ?? rowsOfStages(pick(raw, ["stages"])),
    createdAt: epoch(pick(raw, ["created_at", "created"])),
    elapsed: num(pick(raw, ["elapsed_seconds", "elapsed"])),
    quality: qualityOf(pick(raw, ["quality", "quality_meta"])),
    error: errorOf(pick(raw, ["error_detail", "error"])),
    queue: pick(raw, ["queue"], ""),
  };
}

/** A stage's state when the answer gives none: from `completed`, the job's error and stage. */
function stageState(raw, key, job) {
  if (pick(raw, ["completed"], null)) return "finished";
  if (job.error && job.error.stage === key) return "failed";
  if (job.stage === key) return ENDED.has(job.state) ? job.state : "running";
  return "pending";
}

/** An events domain's state when the answer gives none: from its batches and its stage's. */
function domainState(raw, key, parent, failedDomains) {
  if (failedDomains.includes(key)) return "failed";
  const done = num(pick(raw, ["batches_done", "done"]));
  const total = num(pick(raw, ["batches_total", "total"]));
  if (parent === "finished" || (total !== null && done !== null && done >= total)) return "finished";
  if (parent === "running" && done) return "running";
  return parent === "running" ? "pending" : parent;
}

function stageOf(raw, job, failedDomains = [], parent = null) {
  const key = stageKey(pick(raw, ["stage", "name", "domain"], ""));
  let state = pick(raw, ["state", "status"], null);
  state ??= parent === null ? stageState(raw, key, job) : domainState(raw, key, parent, failedDomains);
  return {
    key,
    state,
    startedAt: epoch(pick(raw, ["started_at", "started", "began_at"])),
    finishedAt: epoch(pick(raw, ["finished_at", "finished", "ended_at"])),
    seconds: num(pick(raw, ["seconds", "elapsed_seconds", "duration_seconds"])),
    batchesDone: num(pick(raw, ["batches_done", "done"])),
    batchesTotal: num(pick(raw, ["batches_total", "total"])),
    rows: num(pick(raw, ["rows"])),
    runs: num(pick(raw, ["runs"])),
    retries: pick(raw, ["retries"], null),
    attempts: pick(raw, ["attempts", "max_attempts", "attempts_per_batch"], null),
    batchStarts: num(pick(raw, ["batch_starts"])),
    batchErrors: num(pick(raw, ["batch_errors"])),
    retriedBatches: pick(raw, ["retried_batches"], []),
    error: errorOf(pick(raw, ["error"])),
    quality: qualityOf(pick(raw, ["quality", "quality_meta"])),
    domains: list(pick(raw, ["domains"], [])).map((d) => stageOf(d, job, failedDomains, state)),
  };
}

/** A job's detail (the operator timeline, or a status document) -> job, stages, ttls. */
export function detailOf(raw) {
  const base = pick(raw, ["job"], raw);
  const job = jobOf({ ...raw, ...(base === raw ? {} : base) });
  const failedDomains = pick(raw, ["failed_domains"], []);
  const stages = list(pick(raw, ["timeline", "stages"], [])).map((s) => stageOf(s, job, failedDomains));
  stages.sort((a, b) => rank(a.key) - rank(b.key));
  return {
    job,
    stages,
    ttls: pick(raw, ["keys", "key_ttls", "ttls"], null),
    ttlSeconds: num(pick(raw, ["ttl_seconds"])),
    failedDomains,
  };
}

function rank(stage) {
  const i = STAGE_ORDER.indexOf(stage);
  return i < 0 ? STAGE_ORDER.length : i;
}

/** "3" / "max 2 over 5 batches" of an attempts or retries value (number, list or map). */
export function attemptsText(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" || typeof value === "string") return String(value);
  const values = (Array.isArray(value) ? value : Object.values(value))
    .map((v) => num(typeof v === "object" && v ? pick(v, ["attempts", "retries"]) : v))
    .filter((v) => v !== null);
  if (!values.length) return "–";
  return `max ${Math.max(...values)} over ${values.length} batch${values.length === 1 ? "" : "es"}`;
}

export function overviewOf(raw) {
  const redis = pick(raw, ["redis"], {}) || {};
  return {
    workers: list(pick(raw, ["workers"], [])),
    queues: list(pick(raw, ["queues"], [])),
    redis: {
      used: num(pick(redis, ["used_memory", "used_bytes", "used"])),
      max: num(pick(redis, ["maxmemory", "max_bytes", "max"])),
      policy: pick(redis, ["maxmemory_policy", "policy"], ""),
      evicting: pick(redis, ["evicting", "evicts"], null),
    },
    stalled: list(pick(raw, ["stalled_jobs", "stalled"], [])),
  };
}

/** Each job's stages on a time axis, from the job event log's entries. */
export class Timelines {
  constructor() {
    this.jobs = new Map();
  }

  job(id) {
    let tl = this.jobs.get(id);
    if (!tl) {
      tl = { id, accepted: null, end: null, outcome: null, segments: [], retries: [], info: {} };
      this.jobs.set(id, tl);
    }
    return tl;
  }

  add(event) {
    const id = event.job;
    const at = epoch(event.at);
    if (!id || at === null) return;
    const tl = this.job(id);
    const kind = event.event;
    const stage = stageKey(event.stage);
    const last = (s) => [...tl.segments].reverse().find((seg) => seg.stage === s);
    if (!TERMINAL_EVENTS.has(kind) && tl.end !== null && kind !== "accepted") {
      tl.end = null; // it moves again: a retry reopened it (its stage starts anew)
      tl.outcome = null;
    }
    if (kind === "accepted") {
      tl.accepted = at;
      tl.info = { profile: event.profile, kind: event.kind, lots: num(event.lots) };
    } else if (kind === "stage_started") {
      tl.segments.push({ stage, start: at, end: null, state: "running" });
    } else if (kind === "stage_finished") {
      let seg = last(stage);
      const secs = num(event.seconds);
      if (!seg || seg.end !== null) {
        seg = { stage, start: secs !== null ? at - secs : at, end: null, state: "running" };
        tl.segments.push(seg);
      }
      Object.assign(seg, { end: at, state: "finished", rows: num(event.rows), seconds: secs });
    } else if (kind === "retry") {
      tl.retries.push({ at, work: event.work, code: event.code, reason: event.reason });
    } else if (TERMINAL_EVENTS.has(kind)) {
      tl.end = at;
      tl.outcome = kind;
      for (const seg of tl.segments) {
        if (seg.end === null) {
          seg.end = at;
          seg.state = kind === "finished" ? "finished" : kind === "failed" ? "failed" : "cancelled";
        }
      }
      if (kind === "failed" && stage && !tl.segments.some((s) => s.stage === stage)) {
        tl.segments.push({ stage, start: at, end: at, state: "failed" });
      }
    }
  }

  /** Segments of a job for the Gantt strip, with its queued time first. */
  segments(id) {
    const tl = this.jobs.get(id);
    if (!tl) return [];
    const out = [];
    const first = tl.segments[0];
    if (tl.accepted !== null && (!first || first.start > tl.accepted)) {
      out.push({ stage: "queued", start: tl.accepted, end: first ? first.start : tl.end, state: "queued" });
    }
    return out.concat(tl.segments);
  }

  /** Retry events of a job per stage (`work` names the message: "events:history:3", counted for the stage and its domain). */
  retriesByStage(id) {
    const counts = {};
    for (const r of this.jobs.get(id)?.retries || []) {
      const [stage, domain] = String(r.work || "").split(":");
      counts[stageKey(stage)] = (counts[stageKey(stage)] || 0) + 1;
      if (domain) counts[`${stageKey(stage)}:${domain}`] = (counts[`${stageKey(stage)}:${domain}`] || 0) + 1;
    }
    return counts;
  }
}
