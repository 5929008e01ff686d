// Small helpers: formatting numbers, durations and times, reading fields defensively, and
// building DOM / SVG elements (text is always set as text, never parsed as HTML).

export const SVG_NS = "http://www.w3.org/2000/svg";

/** The first of `names` that `obj` holds (not undefined or null), else `fallback`. */
export function pick(obj, names, fallback = undefined) {
  if (obj == null || typeof obj !== "object") return fallback;
  for (const name of names) {
    if (obj[name] !== undefined && obj[name] !== null) return obj[name];
  }
  return fallback;
}

export function num(value) {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

export function count(value) {
  const n = num(value);
  return n === null ? "–" : Math.round(n).toLocaleString("en-US");
}

export function seconds(value) {
  const n = num(value);
  if (n === null) return "–";
  if (n < 60) return `${n.toFixed(n < 10 ? 1 : 0)} s`;
  const m = Math.floor(n / 60);
  if (m < 60) return `${m} min ${Math.round(n % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function rate(value) {
  const n = num(value);
  if (n === null) return "–";
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k/s`;
  return `${n.toFixed(0)}/s`;
}

export function bytes(value) {
  const n = num(value);
  if (n === null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Epoch seconds (or an ISO text) -> epoch seconds, or null. */
export function epoch(value) {
  const n = num(value);
  if (n !== null) return n > 1e12 ? n / 1000 : n;
  if (typeof value === "string") {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? null : parsed / 1000;
  }
  return null;
}

export function clock(value) {
  const t = epoch(value);
  if (t === null) return "–";
  return new Date(t * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

export function ago(value, now = Date.now() / 1000) {
  const t = epoch(value);
  return t === null ? "–" : `${seconds(Math.max(0, now - t))} ago`;
}

/** `el("td", {class: "num", dataset: {testid: "x"}}, "text", child)` */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    } else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

/** Replace the children of `node` (by id or element) with `children`. */
export function fill(node, ...children) {
  const target = typeof node === "string" ? document.getElementById(node) : node;
  target.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  return target;
}

/** A stage's name as the page shows it (`seed_resolve` and `seed-resolve` alike). */
export function stageKey(name) {
  return String(name ?? "").replace(/_/g, "-");
}
