// Live event streams of several items at once, at most `limit` open (the gateway caps the
// streams of an owner); the others wait for a free slot. A dropped stream reconnects.

const BACKOFF_MS = [500, 1000, 2000, 5000, 10000];

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class LiveStreams {
  /**
   * @param {number} limit streams open at once
   * @param {(id: string, name: string, data: object) => void} onEvent each event of an item
   * @param {(id: string, error: Error) => boolean} onError true to keep trying, false to stop
   */
  constructor(limit, onEvent, onError) {
    this.limit = limit;
    this.onEvent = onEvent;
    this.onError = onError;
    this.open = new Map();
    this.waiting = [];
    this.api = null;
  }

  watch(api, id) {
    this.api = api;
    if (this.open.has(id) || this.waiting.includes(id)) return;
    this.waiting.push(id);
    this.pump();
  }

  drop(id) {
    this.waiting = this.waiting.filter((other) => other !== id);
    const controller = this.open.get(id);
    if (!controller) return;
    this.open.delete(id);
    controller.abort();
    this.pump();
  }

  clear() {
    this.waiting = [];
    for (const id of [...this.open.keys()]) this.drop(id);
  }

  pump() {
    while (this.open.size < this.limit && this.waiting.length) {
      const id = this.waiting.shift();
      const controller = new AbortController();
      this.open.set(id, controller);
      this.follow(id, controller.signal);
    }
  }

  async follow(id, signal) {
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.api.events(id, (name, data) => this.onEvent(id, name, data), signal);
        failures = 0;
      } catch (error) {
        if (signal.aborted || !this.onError(id, error)) break;
        failures += 1;
      }
      if (signal.aborted) break;
      await pause(BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)], signal);
    }
    if (this.open.get(id)?.signal === signal) {
      this.open.delete(id);
      this.pump();
    }
  }
}
