// Calls to the service's API from the page: the bearer token (asked once, kept in this tab's
// sessionStorage only), the answer's envelope unwrapped, errors as {code, message}.

const TOKEN_KEY = "trace-monitor.token";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export class Api {
  /** `askToken(reason)`: a promise of the token the operator typed (the page's dialog). */
  constructor(askToken) {
    this.askToken = askToken;
    this.asking = null; // one dialog for every call that met a 401 at once
  }

  get token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  /** `{data, status}` of a 2xx (the envelope's `data`, or the whole body); ApiError else. */
  async call(method, path, { body, signal } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = { Accept: "application/json" };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
      if (response.status === 401 && attempt < 3) {
        await this.needToken(this.token ? "The token was refused." : "");
        continue;
      }
      return unwrap(response);
    }
  }

  get(path, options) {
    return this.call("GET", path, options);
  }

  needToken(reason) {
    if (!this.asking) {
      this.asking = this.askToken(reason).then((token) => {
        this.token = token;
        this.asking = null;
      });
    }
    return this.asking;
  }
}

async function unwrap(response) {
  let payload = null;
  const text = await response.text();
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = null;
  }
  if (response.ok) {
    const enveloped = payload && payload.success === true && "data" in payload;
    return { status: response.status, data: enveloped ? payload.data : payload };
  }
  const error = (payload && payload.error) || {};
  const retry = Number(response.headers.get("Retry-After"));
  throw new ApiError(
    response.status,
    error.code || `HTTP_${response.status}`,
    error.message || text.slice(0, 200) || response.statusText,
    Number.isFinite(retry) && retry > 0 ? retry : null,
  );
}

/** A query string of the given values, leaving out the empty ones. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
