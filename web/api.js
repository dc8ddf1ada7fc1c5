// The HTTP API client: JSON requests, the server's {"error"} text as the message, and the 401 flow
// (ask for the access token once, however many requests were refused, then retry them).

const TOKEN_KEY = "photoseek.token";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

// Set by the page: async (message) => token string, or null when the person cancels.
let askForToken = null;
let pendingLogin = null;

export function setTokenPrompt(fn) {
  askForToken = fn;
}

// searchd refuses requests that change state without this header (searchd/origins.py): a form or a
// page on another site cannot send it, which is the point.
export const CLIENT_HEADERS = { "X-Photoseek": "1" };

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...CLIENT_HEADERS, Authorization: `Bearer ${token}` } : { ...CLIENT_HEADERS };
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string" && body.error) return body.error;
  } catch {
    // not JSON: fall through to a generic sentence
  }
  if (response.status === 404) return "The server does not know this address (404).";
  if (response.status >= 500) return `The server failed to answer (${response.status}). Its log says why.`;
  return `The server refused the request (${response.status} ${response.statusText}).`;
}

/**
 * Ask for the token and log in. Concurrent 401s share one prompt. The server sets a cookie on
 * POST /api/login (which <img> thumbnails need); the token is also kept in sessionStorage and sent
 * as an Authorization header.
 */
function login() {
  if (!pendingLogin) {
    pendingLogin = (async () => {
      let message = "This photoseek server needs an access token.";
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const token = askForToken ? await askForToken(message) : null;
        if (!token) throw new ApiError("Photos are hidden until you enter the server's access token.", 401);
        const response = await fetch("api/login", {
          method: "POST",
          headers: { ...CLIENT_HEADERS, "Content-Type": "application/json" },
          body: JSON.stringify({ token }),
          credentials: "same-origin",
        });
        if (response.ok) {
          sessionStorage.setItem(TOKEN_KEY, token);
          return;
        }
        message = response.status === 401 || response.status === 403
          ? "That token was not accepted. Check it and try again."
          : await errorMessage(response);
      }
      throw new ApiError("Too many wrong tokens. Reload the page to try again.", 401);
    })().finally(() => {
      pendingLogin = null;
    });
  }
  return pendingLogin;
}

/**
 * fetch() a JSON API route (path relative to the page, e.g. "api/search?q=x").
 * Throws ApiError with a sentence a person understands; AbortError passes through untouched.
 */
export async function request(path, { method = "GET", json, body, signal } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const init = { method, signal, credentials: "same-origin", headers: { Accept: "application/json", ...authHeaders() } };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      init.body = body;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("Cannot reach the photoseek server. Is `photoseek serve` still running?", 0);
    }
    if (response.status === 401 && attempt < 2) {
      sessionStorage.removeItem(TOKEN_KEY);
      await login();
      continue;
    }
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    if (response.status === 204) return null;
    return response.json();
  }
}

// The search parameters the API knows, in the order they appear in URLs.
export const SEARCH_KEYS = ["q", "like", "folder", "date_from", "date_to", "camera", "type", "tag", "generated", "min_score"];

/** Run a search: GET for text/like/browse, POST multipart when an image file is part of it. */
export function search(params, { image = null, offset = 0, limit = 60, signal } = {}) {
  const fields = new URLSearchParams();
  for (const key of SEARCH_KEYS) {
    const value = params[key];
    if (value !== undefined && value !== null && value !== "") fields.set(key, value);
  }
  fields.set("limit", String(limit));
  fields.set("offset", String(offset));
  if (image) {
    const form = new FormData();
    form.append("image", image, image.name || "pasted-image.png");
    for (const [key, value] of fields) form.append(key, value);
    return request("api/search", { method: "POST", body: form, signal });
  }
  return request(`api/search?${fields}`, { signal });
}

export const getImage = (id, { signal } = {}) => request(`api/images/${encodeURIComponent(id)}`, { signal });
export const getFacets = () => request("api/facets");
export const thumbUrl = (id) => `api/images/${encodeURIComponent(id)}/thumb`;
export const fileUrl = (id) => `api/images/${encodeURIComponent(id)}/file`;
