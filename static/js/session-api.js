/**
 * The class session's HTTP API (/api/sessions), and nothing else. The presenter token goes
 * only into the Authorization header of these requests, never into a URL.
 */

import { ApiError, errorFrom } from "./api.js";

const base = (code) => `/api/sessions/${encodeURIComponent(code)}`;

async function call(url, { method = "GET", token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError("The server cannot be reached. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

export const createSession = () => call("/api/sessions", { method: "POST" });
export const getSession = (code) => call(base(code));
export const putState = (code, token, view) => call(`${base(code)}/state`, { method: "PUT", token, body: view });
export const getWall = (code, token) => call(`${base(code)}/wall`, { token });
export const endSession = (code, token) => call(`${base(code)}/end`, { method: "POST", token });
export const submit = (code, entry) => call(`${base(code)}/submissions`, { method: "POST", body: entry });
export const eventsUrl = (code) => `${base(code)}/events`;
export const qrUrl = (code) => `${base(code)}/qr.svg`;
