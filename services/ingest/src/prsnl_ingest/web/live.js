// The caller's one live stream (GET /api/v1/items/events): every change of every item of the
// owner on one connection, however many items are in flight. A dropped stream reconnects with
// backoff; each connection begins with `listening`, after which the page re-reads what it may
// have missed while it was away.

const BACKOFF_MS = [500, 1000, 2000, 5000, 10000];
const OWNER_EVENTS = "/api/v1/items/events";

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class OwnerStream {
  /**
   * @param {(id: string, name: string, data: object) => void} onEvent each event of an item
   * @param {() => void} onListening the stream is (again) subscribed
   * @param {(error: Error) => boolean} onError true to keep trying, false to stop
   */
  constructor(onEvent, onListening, onError) {
    this.onEvent = onEvent;
    this.onListening = onListening;
    this.onError = onError;
    this.controller = null;
  }

  start(api) {
    this.stop();
    this.controller = new AbortController();
    this.follow(api, this.controller.signal);
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  async follow(api, signal) {
    let failures = 0;
    const dispatch = (name, data) => {
      if (name !== "listening") {
        this.onEvent(data.item_id, name, data);
        return;
      }
      failures = 0;
      this.onListening();
    };
    while (!signal.aborted) {
      try {
        await api.events(OWNER_EVENTS, dispatch, signal);
      } catch (error) {
        if (signal.aborted || !this.onError(error)) return;
        failures += 1;
      }
      if (signal.aborted) return;
      await pause(BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)], signal);
    }
  }
}
