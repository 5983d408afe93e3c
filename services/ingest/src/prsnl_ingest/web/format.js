// Numbers and states of an item as a person reads them.

export const ACTIVE = new Set(["pending", "downloading", "downloaded", "processing"]);

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function bytes(size) {
  if (size == null || !Number.isFinite(size)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = size;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 && unit ? 1 : 0)} ${units[unit]}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

/** "Downloading 42 %", "Processing", "Retrying (attempt 2 of 4)": the status with its progress. */
export function statusText(item) {
  const label = item.status.charAt(0).toUpperCase() + item.status.slice(1);
  const fraction = item.progress?.fraction;
  if (item.retry?.attempt && ACTIVE.has(item.status)) {
    const { attempt, max_attempts: max } = item.retry;
    return `${label}, will retry (attempt ${attempt}${max ? ` of ${max}` : ""} failed)`;
  }
  if (fraction != null && ACTIVE.has(item.status)) {
    return `${label} ${Math.floor(fraction * 100)} %`;
  }
  if (item.status === "downloading" && item.progress?.downloaded_bytes) {
    return `${label} ${bytes(item.progress.downloaded_bytes)}`;
  }
  return label;
}

/** The smallest thumbnail at least `width` wide (or the largest there is). */
export function thumbnail(item, width) {
  const sizes = Object.keys(item.links?.thumbnails || {})
    .map(Number)
    .sort((a, b) => a - b);
  if (!sizes.length) return null;
  const chosen = sizes.find((size) => size >= width) ?? sizes[sizes.length - 1];
  return item.links.thumbnails[String(chosen)];
}

export function titleOf(item) {
  return item.title || item.webpage_url || item.url;
}

/** "Your videos use 1.2 GB (3 ready, 1 failed) · quota 1.2 GB of 5.0 GB · 12 of 100 captures today · 40 GB free on disk" */
export function usageText(storage) {
  const you = storage.you;
  const counts = Object.entries(you.items || {})
    .filter(([, count]) => count > 0)
    .map(([status, count]) => `${count} ${status}`);
  const parts = [`Your videos use ${bytes(you.usage.total.bytes)}${counts.length ? ` (${counts.join(", ")})` : ""}`];
  const quota = you.quota;
  if (quota.max_bytes) parts.push(`quota ${bytes(quota.used_bytes)} of ${bytes(quota.max_bytes)}`);
  if (quota.max_captures_per_day) {
    parts.push(`${quota.captures_last_24h} of ${quota.max_captures_per_day} captures in the last 24 h`);
  }
  parts.push(`${bytes(storage.free_bytes)} free on disk`);
  return parts.join(" · ");
}
