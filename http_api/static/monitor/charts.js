// The page's two charts, drawn as plain SVG (no library): each job's stages on a time axis
// (a Gantt strip) and rows/s per events domain.

import { clock, count, rate, seconds, stageKey, svg } from "./format.js";

const LABEL_WIDTH = 175;
const ROW_HEIGHT = 22;
const AXIS_HEIGHT = 22;
const MAX_SPAN_SECONDS = 3600; // the axis shows at most the last hour

/** A tick step (seconds) giving about `want` ticks over `span` seconds. */
function tickStep(span, want = 6) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200];
  return steps.find((s) => span / s <= want) || 86400;
}

/**
 * rows: [{id, label, state, segments: [{stage, start, end, state, rows, seconds}]}] (epoch
 * seconds; `end` null while running). `onSelect(id)` on a click; `selected` is highlighted.
 */
export function gantt(rows, { now, selected, onSelect, width = 900 }) {
  const times = rows.flatMap((r) => r.segments.flatMap((s) => [s.start, s.end ?? now]));
  const height = AXIS_HEIGHT + Math.max(1, rows.length) * ROW_HEIGHT + 4;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    height,
    role: "img",
    "aria-label": "Stages of each job on a time axis",
    class: "gantt",
  });
  if (!rows.length || !times.length) {
    root.append(svg("text", { x: 8, y: AXIS_HEIGHT + 14, class: "empty" }, "No stages seen yet"));
    return root;
  }
  const start = Math.max(Math.min(...times), now - MAX_SPAN_SECONDS); // older parts clipped
  const end = Math.max(now, ...times);
  const span = Math.max(end - start, 10);
  const plot = width - LABEL_WIDTH - 8;
  const x = (t) => LABEL_WIDTH + (Math.max(t - start, 0) / span) * plot;

  const step = tickStep(span);
  const axis = svg("g", { class: "axis" });
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
    axis.append(
      svg("line", { x1: x(t), x2: x(t), y1: AXIS_HEIGHT - 4, y2: height, class: "tick" }),
      svg("text", { x: x(t), y: AXIS_HEIGHT - 8, "text-anchor": "middle" }, clock(t)),
    );
  }
  axis.append(svg("line", { x1: x(now), x2: x(now), y1: AXIS_HEIGHT - 4, y2: height, class: "now" }));
  root.append(axis);

  rows.forEach((row, i) => {
    const y = AXIS_HEIGHT + i * ROW_HEIGHT;
    const group = svg("g", {
      class: `gantt-row${row.id === selected ? " selected" : ""}`,
      dataset: { testid: "gantt-row", jobId: row.id, state: row.state },
      tabindex: 0,
      role: "button",
      "aria-label": `Job ${row.id}, ${row.state}`,
    });
    group.addEventListener("click", () => onSelect?.(row.id));
    group.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") onSelect?.(row.id);
    });
    group.append(
      svg("rect", { x: 0, y, width, height: ROW_HEIGHT, class: "band" }),
      svg("text", { x: 6, y: y + 15, class: "label" }, row.label),
    );
    for (const seg of row.segments) {
      if ((seg.end ?? now) < start) continue; // before the axis
      const x0 = x(seg.start);
      const x1 = Math.max(x(seg.end ?? now), x0 + 2);
      const what = [
        `${seg.stage}: ${seg.state}`,
        `${clock(seg.start)} – ${seg.end ? clock(seg.end) : "now"}`,
        seg.seconds != null ? seconds(seg.seconds) : null,
        seg.rows != null ? `${count(seg.rows)} rows` : null,
      ].filter(Boolean);
      group.append(
        svg(
          "rect",
          {
            x: x0,
            y: y + 4,
            width: x1 - x0,
            height: ROW_HEIGHT - 8,
            rx: 2,
            class: `bar stage-${stageKey(seg.stage)} ${seg.state}`,
            dataset: { testid: "gantt-bar", stage: stageKey(seg.stage), state: seg.state },
          },
          svg("title", {}, what.join("\n")),
        ),
      );
    }
    root.append(group);
  });
  return root;
}

/** bars: [{domain, rate, rows, history: [rate, ...], live}] -> a bar per domain. */
export function rates(bars, { width = 520 } = {}) {
  const rowH = 24;
  const label = 110;
  const spark = 90;
  const plot = width - label - spark - 80;
  const height = Math.max(1, bars.length) * rowH + 6;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    height,
    role: "img",
    "aria-label": "Rows per second per events domain",
    class: "rates",
  });
  if (!bars.length) {
    root.append(svg("text", { x: 8, y: 16, class: "empty" }, "No events rows yet"));
    return root;
  }
  const top = Math.max(1, ...bars.map((b) => b.rate || 0), ...bars.flatMap((b) => b.history));
  bars.forEach((bar, i) => {
    const y = i * rowH + 3;
    const w = ((bar.rate || 0) / top) * plot;
    const group = svg("g", { dataset: { testid: "rate-bar", domain: bar.domain } });
    group.append(
      svg("text", { x: 4, y: y + 15, class: "label" }, bar.domain),
      svg("rect", { x: label, y: y + 3, width: Math.max(w, 1), height: rowH - 8, class: "bar" },
        svg("title", {}, `${bar.domain}: ${rate(bar.rate)}, ${count(bar.rows)} rows`)),
      svg("text", { x: label + Math.max(w, 1) + 6, y: y + 15, class: "value" },
        `${rate(bar.rate)}${bar.live ? "" : " avg"}`),
    );
    if (bar.history.length > 1) {
      const sx = width - spark - 4;
      const pts = bar.history.map((v, k) => {
        const px = sx + (k / (bar.history.length - 1)) * spark;
        const py = y + rowH - 6 - (v / top) * (rowH - 10);
        return `${px.toFixed(1)},${py.toFixed(1)}`;
      });
      group.append(svg("polyline", { points: pts.join(" "), class: "spark" }));
    }
    root.append(group);
  });
  return root;
}
