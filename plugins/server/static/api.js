// Calls to /api/v1 with the login cookie. Whatever changes something carries the
// login's CSRF token in X-CSRF-Token; a 401 sends the browser back to the login page.

export const API = "/api/v1";
let login = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.problems = (body && body.problems) || [];
  }
}

export async function whoami() {
  const response = await fetch("/ui/me", { credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/ui/login");
    throw new ApiError(401, { error: "not logged in" });
  }
  login = await response.json();
  return login;
}

export async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") {
    headers["X-CSRF-Token"] = login ? login.csrf_token : "";
  }
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, init);
  if (response.status === 401) {
    window.location.assign("/ui/login");
  }
  const type = response.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await response.json()
    : await response.text();
  if (!response.ok) {
    throw new ApiError(response.status, typeof data === "object" ? data : { error: data });
  }
  return data;
}

// The stored records of a scan, one object per JSONL line.
export async function records(scanId) {
  const text = await call("GET", `/scans/${encodeURIComponent(scanId)}/results?format=jsonl`);
  return text.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line));
}

// Whether the API serves a path (read from its OpenAPI document), e.g. /schedules.
export async function hasRoute(path) {
  try {
    const doc = await call("GET", "/openapi.json");
    return Object.prototype.hasOwnProperty.call(doc.paths || {}, API + path);
  } catch (e) {
    return false;
  }
}
