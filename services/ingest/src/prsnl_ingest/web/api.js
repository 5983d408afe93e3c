// The page's only way to the server: the public HTTP API with the key as a Bearer header.
// The key never goes into a URL; media elements use the signed links of the answers.

/** An answer that is not a success, with the API's stable code and readable detail. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

const UNREACHABLE = "The server cannot be reached. Check the connection and try again.";

export class Api {
  constructor(key) {
    this.key = key;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.key}`, Accept: "application/json", ...extra };
  }

  async request(path, { method = "GET", body } = {}) {
    const init = { method, headers: this.headers(), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network_error", UNREACHABLE);
    }
    return answerOf(response);
  }

  items({ q = "", status = "", cursor = "", limit = 20 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (q) query.set("q", q);
    if (status) query.set("status", status);
    if (cursor) query.set("cursor", cursor);
    return this.request(`/api/v1/items?${query}`);
  }

  item(id) {
    return this.request(`/api/v1/items/${encodeURIComponent(id)}`);
  }

  capture(url, { maxHeight = null, audioOnly = false } = {}) {
    const body = { url, audio_only: audioOnly };
    if (maxHeight) body.max_height = maxHeight;
    return this.request("/api/v1/captures", { method: "POST", body });
  }

  retry(id) {
    return this.request(`/api/v1/items/${encodeURIComponent(id)}/retry`, { method: "POST" });
  }

  transcode(id, profile) {
    const path = `/api/v1/items/${encodeURIComponent(id)}/transcode`;
    return this.request(path, { method: "POST", body: { profile } });
  }

  storage() {
    return this.request("/api/v1/storage");
  }

  remove(id) {
    return this.request(`/api/v1/items/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /**
   * Server-Sent Events of `path`, read from a fetch() stream: EventSource cannot send the
   * Authorization header. Calls onEvent(name, data) for each event until the stream ends
   * or `signal` aborts; throws ApiError when the stream cannot be opened.
   */
  async events(path, onEvent, signal) {
    let response;
    try {
      response = await fetch(path, {
        headers: this.headers({ Accept: "text/event-stream" }),
        cache: "no-store",
        signal,
      });
    } catch (error) {
      if (signal?.aborted) return;
      throw new ApiError(0, "network_error", UNREACHABLE);
    }
    if (!response.ok) await answerOf(response);
    const parser = new EventParser(onEvent);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.push(value);
      }
    } catch (error) {
      if (!signal?.aborted) throw new ApiError(0, "network_error", UNREACHABLE);
    }
  }
}

async function answerOf(response) {
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const detail = data?.detail || `The server answered ${response.status} ${response.statusText}.`;
  throw new ApiError(response.status, data?.code || `http_${response.status}`, detail);
}

/** text/event-stream framing: "event:" and "data:" lines, a blank line ends an event. */
export class EventParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.name = "message";
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    // A CR at the very end may be the first half of a CRLF: keep it for the next piece.
    const end = this.buffer.endsWith("\r") ? this.buffer.length - 1 : this.buffer.length;
    const lines = this.buffer.slice(0, end).split(/\r\n|\r|\n/);
    this.buffer = lines.pop() + this.buffer.slice(end);
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.dispatch();
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.name = value;
    else if (field === "data") this.data.push(value);
  }

  dispatch() {
    let data;
    try {
      data = JSON.parse(this.data.join("\n"));
    } catch {
      return;
    }
    this.onEvent(this.name, data);
  }
}
