// The console's only door to the server: the operator API, with the token from localStorage
// (one sign-in for every tab of this browser; signing out, or the token expiring, ends them
// all: app.js follows the `storage` event).

const KEY = "handoff.token";

export class ApiError extends Error {
  constructor(status, code, detail, fields) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
  }
}

export const token = {
  get: () => localStorage.getItem(KEY),
  set: (value) => localStorage.setItem(KEY, value.trim()),
  clear: () => localStorage.removeItem(KEY),
  key: KEY,
};

let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

// The first 401 ends the session once; calls still in flight then fail quietly with it, and
// nothing is ever sent without a token (no `Bearer null`).
let ended = null;
function unauthorized(error) {
  if (!ended) {
    ended = error;
    onUnauthorized(error);
  }
  return error;
}
export function sessionStarted() {
  ended = null;
}

function authorization() {
  const t = token.get();
  if (!t) throw ended || new ApiError(401, "missing_token", "Not signed in.");
  return `Bearer ${t}`;
}

export async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  headers.Authorization = authorization();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return answer(() => fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  }));
}

// A file as the request body (a desk reply's attachment): its type in Content-Type.
export function upload(path, file) {
  const headers = {
    Accept: "application/json",
    Authorization: authorization(),
    "Content-Type": file.type || "application/octet-stream",
  };
  const url = `${path}?name=${encodeURIComponent(file.name)}`;
  return answer(() => fetch(url, { method: "POST", headers, body: file }));
}

async function answer(send) {
  let response;
  try {
    response = await send();
  } catch (err) {
    throw unreachable();
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw failure(response, data);
  return data;
}

const unreachable = () => new ApiError(0, "network", "The server cannot be reached. Check your connection.");

function failure(response, data) {
  const e = (data && data.error) || {};
  const error = new ApiError(response.status, e.code || `http_${response.status}`, e.detail, e.fields);
  return response.status === 401 ? unauthorized(error) : error;
}

export const get = (path) => api("GET", path);

// A GET that says when nothing changed: resolves { etag, data }, or null when the server
// answers 304 to the `etag` of the previous answer (polling costs no body then).
export async function getIfChanged(path, etag) {
  const headers = { Accept: "application/json", Authorization: authorization() };
  if (etag) headers["If-None-Match"] = etag;
  let response;
  try {
    response = await fetch(path, { headers });
  } catch (err) {
    throw unreachable();
  }
  if (response.status === 304) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw failure(response, data);
  return { etag: response.headers.get("ETag"), data };
}
export const put = (path, body, headers) => api("PUT", path, body, headers);
export const post = (path, body, headers) => api("POST", path, body, headers);
export const del = (path) => api("DELETE", path);

// Paths ----------------------------------------------------------------------------------

const enc = encodeURIComponent;
export const paths = {
  user: (t, channel, ext) => `/v1/tenants/${enc(t)}/users/${enc(channel)}/${enc(ext)}`,
  interaction: (t, channel, ext, agent) =>
    `/v1/tenants/${enc(t)}/users/${enc(channel)}/${enc(ext)}/agents/${enc(agent)}`,
  agent: (t, agent) => `/v1/tenants/${enc(t)}/agents/${enc(agent)}`,
  agents: (t) => `/v1/tenants/${enc(t)}/agents`,
  users: (t) => `/v1/tenants/${enc(t)}/users`,
  desk: (t) => `/v1/tenants/${enc(t)}/desk`,
  queues: (t) => `/v1/tenants/${enc(t)}/queues`,
  queue: (t, q) => `/v1/tenants/${enc(t)}/queues/${enc(q)}`,
  ticket: (t, id) => `/v1/tenants/${enc(t)}/tickets/${enc(id)}`,
  analytics: (t) => `/v1/tenants/${enc(t)}/analytics`,
  canned: (t) => `/v1/tenants/${enc(t)}/canned-replies`,
};

// Server-sent events over fetch: EventSource cannot send the Authorization header, and a
// token in a URL would end up in logs and history. Calls onEvent(name, data) per event and
// resolves when the stream ends; rejects on HTTP errors.
export async function stream(path, onEvent, signal) {
  const response = await fetch(path, {
    headers: { Authorization: authorization(), Accept: "text/event-stream" },
    signal,
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    const e = data.error || {};
    const error = new ApiError(response.status, e.code, e.detail);
    if (response.status === 401) throw unauthorized(error);
    throw error;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
