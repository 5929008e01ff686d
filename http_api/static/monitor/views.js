// Rendering what the page knows into its sections (text only: nothing is parsed as HTML).

import { ago, bytes, clock, count, el, fill, num, pick, rate, seconds } from "./format.js";
import { attemptsText } from "./model.js";

function stateBadge(state) {
  return el("span", { class: `state state-${state}`, dataset: { testid: "state" } }, state);
}

/** The jobs table: a row per job, the selected one marked; a click or Enter selects. */
export function renderJobs(jobs, selected, onSelect) {
  const rows = jobs.map((job) => {
    const row = el(
      "tr",
      {
        class: job.id === selected ? "selected" : "",
        tabindex: 0,
        "aria-selected": job.id === selected ? "true" : "false",
        dataset: { testid: "job-row", jobId: job.id, state: job.state, stage: job.stage },
        onclick: () => onSelect(job.id),
        onkeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            onSelect(job.id);
          }
        },
      },
      el("td", {}, el("code", { title: job.id }, job.id.slice(0, 12)), job.kind ? el("span", { class: "muted kind" }, ` ${job.kind}`) : null),
      el("td", {}, job.profile),
      el("td", { class: "num" }, count(job.cids)),
      el("td", {}, stateBadge(job.state)),
      el("td", { dataset: { testid: "job-stage" } }, job.stage || "–"),
      el("td", { class: "num" }, seconds(job.elapsed)),
      el("td", { class: "num" }, count(job.rows)),
      el("td", { title: job.createdAt ? new Date(job.createdAt * 1000).toISOString() : "" }, clock(job.createdAt)),
    );
    return row;
  });
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No job matches the filters")));
  }
  fill("jobs-body", rows);
}

function fact(term, value, testid) {
  return [el("dt", {}, term), el("dd", { dataset: testid ? { testid } : {} }, value)];
}

function stageRow(stage, retries, sub = false) {
  const batches =
    stage.batchesDone === null
      ? "–"
      : `${count(stage.batchesDone)}${stage.batchesTotal !== null ? ` / ${count(stage.batchesTotal)}` : ""}`;
  const secs = stage.seconds ?? (stage.startedAt && stage.finishedAt ? stage.finishedAt - stage.startedAt : null);
  const speed = secs && stage.rows !== null ? stage.rows / secs : null;
  const tries = [];
  if (stage.batchStarts !== null) {
    tries.push(`${count(stage.batchStarts)} starts`, `${count(stage.batchErrors ?? 0)} errors`);
  } else {
    tries.push(`retries ${attemptsText(stage.retries ?? retries ?? 0)}`);
    if (stage.attempts !== null) tries.push(`attempts ${attemptsText(stage.attempts)}`);
  }
  if (stage.runs !== null && !sub) tries.push(`runs ${stage.runs}`);
  const retried = Array.isArray(stage.retriedBatches) ? stage.retriedBatches : [];
  const listed = retried.slice(0, 4).map((b) => {
    const errors = num(pick(b, ["errors"]));
    return `#${pick(b, ["batch"], "?")} ×${pick(b, ["starts", "attempts"], "?")}${errors ? ` (${errors} err)` : ""}`;
  });
  const progress = el("progress", {
    max: stage.batchesTotal || 1,
    value: stage.batchesTotal ? stage.batchesDone || 0 : stage.state === "finished" ? 1 : 0,
    "aria-label": `${stage.key} batches`,
  });
  return el(
    "tr",
    { class: sub ? "domain" : "stage", dataset: { testid: sub ? "domain-row" : "stage-row", stage: stage.key, state: stage.state } },
    el("th", { scope: "row" }, sub ? `↳ ${stage.key}` : stage.key),
    el("td", {}, stateBadge(stage.state)),
    el("td", {}, clock(stage.startedAt)),
    el("td", {}, clock(stage.finishedAt)),
    el("td", { class: "num" }, secs !== null ? secs.toFixed(1) : "–"),
    el("td", { class: "batches" }, progress, " ", batches),
    el("td", { class: "num" }, count(stage.rows)),
    el("td", { class: "num" }, speed !== null ? rate(speed) : "–"),
    el(
      "td",
      { dataset: { testid: "stage-attempts" } },
      tries.join(" · "),
      listed.length ? el("div", { class: "retried" }, `retried: ${listed.join(", ")}${retried.length > 4 ? ", …" : ""}`) : null,
      stage.error ? el("div", { class: "error-inline" }, `${stage.error.code} ${stage.error.message}`) : null,
    ),
  );
}

/** The selected job: facts, error, stage timeline, quality, key TTLs. */
export function renderDetail(detail, { segments, retries, now }) {
  const { job } = detail;
  document.getElementById("job-detail").hidden = false;
  fill("detail-id", job.id);
  fill("detail-state", stateBadge(job.state));
  fill(
    "detail-facts",
    fact("profile", job.profile || "–"),
    fact("kind", job.kind || "–"),
    fact("CIDs", count(job.cids)),
    fact("queue", job.queue || "–"),
    fact("created", job.createdAt ? `${clock(job.createdAt)} (${ago(job.createdAt, now)})` : "–"),
    fact("elapsed", seconds(job.elapsed)),
    fact("current stage", job.stage || "–", "detail-stage"),
    fact("rows", count(job.rows)),
  );

  const error = document.getElementById("job-error");
  error.hidden = !job.error;
  if (job.error) {
    fill(
      error,
      el("strong", {}, "Error "),
      el("code", { dataset: { testid: "error-code" } }, job.error.code || "?"),
      job.error.stage ? [" in stage ", el("code", { dataset: { testid: "error-stage" } }, job.error.stage)] : null,
      el("div", { class: "message" }, job.error.message),
    );
  }

  // times from the event log where the detail has none
  const times = {};
  for (const seg of segments) {
    const t = (times[seg.stage] ||= { start: seg.start, end: seg.end });
    t.start = Math.min(t.start, seg.start);
    t.end = seg.end;
  }
  const rows = [];
  for (const stage of detail.stages) {
    stage.startedAt ??= times[stage.key]?.start ?? null;
    stage.finishedAt ??= stage.state === "finished" ? times[stage.key]?.end ?? null : null;
    rows.push(stageRow(stage, retries[stage.key]));
    for (const domain of stage.domains) rows.push(stageRow(domain, retries[`${stage.key}:${domain.key}`], true));
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No stage yet")));
  fill("stage-body", rows);

  renderQuality(job.quality, detail);
  renderTtls(detail);
}

function renderQuality(quality, detail) {
  if (!quality) {
    fill("job-quality", el("p", { class: "muted" }, "No quality for this job (no events domains)."));
    return;
  }
  // the domains' own verdicts, where the job's reasons do not already tell them
  const told = quality.reasons.join(" ");
  const perDomain = detail.stages
    .flatMap((s) => s.domains)
    .filter((d) => d.quality && d.quality.status !== "complete" && !told.includes(d.key))
    .map((d) => el("li", {}, `${d.key}: ${d.quality.status}${d.quality.reasons.length ? ` (${d.quality.reasons.join("; ")})` : ""}`));
  const ranges = (quality.failedRanges || []).map((r) =>
    el("li", {}, `lots ${pick(r, ["start"], "?")} … ${pick(r, ["end"], "?")}${r.lots ? ` (${r.lots} lots)` : ""}`),
  );
  fill(
    "job-quality",
    el("p", {}, el("span", { class: `quality quality-${quality.status}`, dataset: { testid: "quality-status" } }, quality.status),
      quality.observed !== null && quality.observed !== undefined ? ` · ${count(quality.observed)} rows observed` : "",
      quality.maxRows ? ` · row guard ${count(quality.maxRows)}` : ""),
    quality.reasons.length ? el("ul", { class: "plain", dataset: { testid: "quality-reasons" } }, quality.reasons.map((r) => el("li", {}, r))) : el("p", { class: "muted" }, "every batch committed"),
    (detail.failedDomains || []).length ? el("p", {}, `failed domains: ${detail.failedDomains.join(", ")}`) : null,
    perDomain.length ? el("ul", { class: "plain" }, perDomain) : null,
    ranges.length ? el("ul", { class: "plain" }, ranges) : null,
  );
}

const TTL_FIELDS = ["count", "keys", "min_ttl_seconds", "min_seconds", "max_ttl_seconds", "max_seconds", "named"];

function renderTtls(detail) {
  const ttls = detail.ttls;
  const items = [];
  let named = [];
  if (detail.ttlSeconds !== null) items.push(fact("job", seconds(detail.ttlSeconds)));
  if (ttls && typeof ttls === "object") {
    const min = num(pick(ttls, ["min_ttl_seconds", "min_seconds"]));
    const max = num(pick(ttls, ["max_ttl_seconds", "max_seconds"]));
    items.push(fact("keys", count(pick(ttls, ["count", "keys"]))));
    items.push(fact("TTL", min === null && max === null ? "–" : `${seconds(min)} … ${seconds(max)}`, "ttl-range"));
    for (const [key, value] of Object.entries(ttls)) {
      if (TTL_FIELDS.includes(key) || typeof value === "object") continue;
      const bad = (key === "without_ttl" || key === "gone") && num(value) > 0;
      items.push([el("dt", {}, key.replace(/_/g, " ")), el("dd", { class: bad ? "warn" : "" }, String(value))]);
    }
    named = Array.isArray(ttls.named) ? ttls.named : [];
  }
  const keys = named.map((k) =>
    el("tr", {},
      el("td", {}, el("code", { title: pick(k, ["key"], "") }, shortKey(pick(k, ["key"], "")))),
      el("td", { class: "num" }, pick(k, ["exists"], true) === false ? "gone" : seconds(num(pick(k, ["ttl_seconds"]))))),
  );
  fill(
    "job-ttls",
    items.length ? el("dl", { class: "facts" }, items) : el("p", { class: "muted" }, "not given"),
    keys.length
      ? el("details", { open: Boolean(document.querySelector("#job-ttls details")?.open), dataset: { testid: "named-keys" } },
          el("summary", {}, `each key (${keys.length})`),
          el("table", { class: "compact", "aria-label": "TTL of each named key" }, el("tbody", {}, keys)))
      : null,
  );
}

/** A job key without its namespace and job id (`trace:job:<id>:progress` -> `progress`). */
function shortKey(key) {
  const parts = String(key).split(":");
  const at = parts.findIndex((p) => /^[0-9a-f]{32}$/.test(p));
  if (at < 0) return String(key);
  return parts.slice(at + 1).join(":") || parts[at - 1] || String(key);
}

/** Workers, queue depths, Redis memory and policy, stalled jobs. */
export function renderOverview(overview, now) {
  const workers = overview.workers.map((w) => {
    const name = pick(w, ["id", "name", "worker", "host", "value"], "?");
    const seen = pick(w, ["last_beat", "last_seen", "heartbeat_at", "seen_at", "at"]);
    const age = num(pick(w, ["seconds_since_beat", "age_seconds", "seconds_ago"]));
    const alive = pick(w, ["alive", "live"], null);
    const when = age !== null ? `${seconds(age)} ago` : seen !== undefined ? ago(seen, now) : "";
    return el("li", { dataset: { testid: "worker" }, class: alive === false ? "dead" : "" },
      el("code", {}, String(name)), when ? el("span", { class: "muted" }, ` heartbeat ${when}`) : null);
  });
  fill("workers", workers.length ? workers : [el("li", { class: "warn" }, "no live worker seen")]);

  const queues = overview.queues.map((q) =>
    el("tr", { dataset: { testid: "queue-row", queue: pick(q, ["queue", "name"], "") }, title: pick(q, ["detail"], "") },
      el("th", { scope: "row" }, String(pick(q, ["queue", "name"], "?"))),
      el("td", { class: "num" }, count(pick(q, ["ready", "depth", "messages", "size", "value"]))),
      el("td", { class: "num" }, count(pick(q, ["delayed"]))),
      el("td", { class: "num" }, count(pick(q, ["dead", "dead_letters", "failed"])))),
  );
  fill("queues", queues.length ? queues : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "–"))]);

  const { used, max, policy, evicting } = overview.redis;
  const share = used !== null && max ? used / max : null;
  fill(
    "redis-memory",
    max
      ? el("meter", { min: 0, max, low: max * 0.7, high: max * 0.9, optimum: 0, value: used ?? 0, "aria-label": "Redis memory used of maxmemory" })
      : null,
    el("p", { dataset: { testid: "redis-used" } },
      `${bytes(used)} used`, max ? ` of ${bytes(max)} (${(share * 100).toFixed(0)} %)` : " (no maxmemory set)"),
  );
  const risky = evicting === true || (policy && policy !== "noeviction");
  const policyNode = document.getElementById("redis-policy");
  policyNode.className = risky ? "warn" : "muted";
  fill(policyNode, policy ? `maxmemory-policy ${policy}${risky ? ": may evict job keys" : ""}` : "");

  const stalled = overview.stalled.map((s) => {
    const id = typeof s === "string" ? s : pick(s, ["job_id", "id", "value"], "?");
    const quiet = typeof s === "object" ? num(pick(s, ["quiet_seconds", "stalled_seconds", "age_seconds"])) : null;
    return el("li", { dataset: { testid: "stalled-job" } }, el("code", {}, String(id)), quiet !== null ? ` quiet ${seconds(quiet)}` : "");
  });
  fill("stalled", stalled.length ? stalled : [el("li", { class: "muted" }, "none")]);
}

const EVENT_FIELDS = ["stage", "domain", "rows", "seconds", "code", "reason", "work", "profile", "kind", "lots", "queue", "why", "keys"];

function eventValue(field, value) {
  const n = num(value);
  return field === "seconds" && n !== null ? n.toFixed(2) : value;
}

/** The newest events first (at most `limit`). */
export function renderEvents(events, { only, onSelect, limit = 200 }) {
  const shown = events.filter((e) => !only || e.job === only).slice(-limit).reverse();
  fill(
    "event-log",
    shown.map((e) =>
      el("li", { class: `event event-${e.event}`, dataset: { testid: "event", event: e.event, jobId: e.job || "" } },
        el("time", {}, clock(e.at)),
        el("span", { class: "event-name" }, e.event),
        el("button", { type: "button", class: "link", onclick: () => onSelect(e.job), "aria-label": `Select job ${e.job}` }, String(e.job || "").slice(0, 12)),
        el("span", { class: "muted" }, EVENT_FIELDS.filter((f) => e[f] !== undefined).map((f) => ` ${f}=${eventValue(f, e[f])}`).join("")),
      ),
    ),
  );
}
