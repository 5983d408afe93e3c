// The page: sign in, save links, the list with live progress, and one item's page.
// Routes live in the fragment (#/ and #/items/<id>): the server has one page to serve.

import { Api, ApiError } from "./api.js";
import * as fmt from "./format.js";
import { OwnerStream } from "./live.js";

const KEY_STORAGE = "prsnl.apiKey";
const PAGE_SIZE = 20;
const MAX_LINKS = 50;
const LINK_REFRESH_MARGIN_MS = 60_000;
const USAGE_DELAY_MS = 500;
const ITEM_ROUTE = /^#\/items\/([0-9a-f-]{36})$/i;

const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  filters: { q: "", status: "" },
  cursor: null,
  listLoaded: false,
  cards: new Map(), // id -> { item, element }
  shown: null, // the item of the item page
  playerSource: "",
  linkTimer: 0,
  usageTimer: 0,
  lastRecovery: 0,
  events: 0, // events heard so far
  heard: new Map(), // id -> number of the last event heard of the item
};

const live = new OwnerStream(onItemEvent, onListening, onStreamError);

// --- errors ------------------------------------------------------------------------------

function describe(error) {
  if (error instanceof ApiError) {
    return error.status ? `${error.message} (${error.code})` : error.message;
  }
  return `Something went wrong in the page: ${error.message || error}`;
}

/** Shows the error in `where`; a refused key sends the person back to sign in. */
function report(error, where) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("The server refused the key (unknown or revoked). Sign in again.");
    return;
  }
  where.textContent = describe(error);
}

function onStreamError(error) {
  if (error instanceof ApiError && error.status === 401) {
    report(error, $("list-error"));
    return false;
  }
  return true; // network trouble or too many streams: try again later
}

// --- sign in -----------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const out = $("sign-in-error");
  out.textContent = "";
  if (!key) {
    out.textContent = "Enter an API key.";
    return;
  }
  const api = new Api(key);
  try {
    await api.items({ limit: 1 });
  } catch (error) {
    const refused = error instanceof ApiError && error.status === 401;
    out.textContent = refused ? "That key is unknown or revoked." : describe(error);
    $("api-key").focus();
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  state.api = api;
  live.start(api);
  route();
}

function signOut(message = "") {
  localStorage.removeItem(KEY_STORAGE);
  state.api = null;
  live.stop();
  state.heard.clear();
  leaveItemPage();
  state.cards.clear();
  state.listLoaded = false;
  clearTimeout(state.usageTimer);
  $("usage").textContent = "";
  $("items").replaceChildren();
  $("sign-in-error").textContent = message;
  if (location.hash !== "#/") history.replaceState(null, "", "#/");
  route();
}

// --- routing -----------------------------------------------------------------------------

function show(section) {
  for (const id of ["sign-in", "library", "item-page"]) $(id).hidden = id !== section;
  $("sign-out").hidden = section === "sign-in";
}

function route() {
  if (!state.api) {
    show("sign-in");
    $("api-key").focus();
    return;
  }
  const match = location.hash.match(ITEM_ROUTE);
  if (match) {
    openItemPage(match[1]);
    return;
  }
  leaveItemPage();
  show("library");
  if (!state.listLoaded) loadList(true);
}

// --- the list ----------------------------------------------------------------------------

async function loadList(reset) {
  const more = $("load-more");
  more.disabled = true;
  $("list-error").textContent = "";
  if (reset) {
    state.cards.clear();
    state.cursor = null;
    $("items").replaceChildren();
  }
  try {
    const asked = state.events;
    const page = await state.api.items({ ...state.filters, cursor: state.cursor, limit: PAGE_SIZE });
    state.listLoaded = true;
    if (reset) loadUsage();
    for (const item of page.items) {
      if (state.cards.has(item.id)) continue;
      addCard(item, false);
      if (heardSince(item.id, asked)) refresh(item.id);
    }
    state.cursor = page.next_cursor;
  } catch (error) {
    report(error, $("list-error"));
  } finally {
    more.hidden = !state.cursor;
    more.disabled = false;
    $("list-empty").hidden = state.cards.size > 0;
  }
}

function addCard(item, first) {
  const element = $("item-card").content.firstElementChild.cloneNode(true);
  element.dataset.id = item.id;
  element.querySelector(".retry").addEventListener("click", () => retry(item.id, element));
  state.cards.set(item.id, { item, element });
  const list = $("items");
  if (first) list.prepend(element);
  else list.append(element);
  $("list-empty").hidden = true;
  itemChanged(item);
}

function renderCard(element, item) {
  const href = `#/items/${item.id}`;
  element.dataset.status = item.status;
  const title = element.querySelector(".title");
  title.textContent = fmt.titleOf(item);
  title.href = href;
  element.querySelector(".thumb").href = href;
  const image = element.querySelector("img");
  const thumb = fmt.thumbnail(item, 320);
  image.hidden = !thumb;
  if (thumb && image.dataset.path !== pathOf(thumb)) {
    image.src = thumb;
    image.dataset.path = pathOf(thumb);
  }
  const facts = [item.platform, fmt.duration(item.duration), fmt.bytes(item.size)];
  element.querySelector(".facts").textContent = facts.filter(Boolean).join(" · ");
  element.querySelector(".status").textContent = fmt.statusText(item);
  showProgress(element.querySelector("progress"), item);
  const failed = item.status === "failed";
  const reason = element.querySelector(".reason");
  const why = failed ? failureText(item) : item.waiting?.detail || "";
  reason.hidden = !why;
  reason.textContent = why;
  reason.classList.toggle("error", failed);
  element.querySelector(".retry").hidden = !failed;
}

function showProgress(bar, item) {
  const fraction = item.progress?.fraction;
  const active = fmt.ACTIVE.has(item.status) || Boolean(item.requested_profile);
  bar.hidden = !active;
  if (fraction == null) bar.removeAttribute("value");
  else bar.value = fraction;
}

function failureText(item) {
  const error = item.error;
  if (!error) return "Failed.";
  return `${error.message || "Failed."} (${error.code}${error.stage ? `, at ${error.stage}` : ""})`;
}

function pathOf(url) {
  return new URL(url, location.href).pathname;
}

// --- storage usage -----------------------------------------------------------------------

/** The caller's usage line; an error there never gets in the way of the list. */
async function loadUsage() {
  clearTimeout(state.usageTimer);
  const line = $("usage");
  if (!state.api) return;
  try {
    line.textContent = fmt.usageText(await state.api.storage());
  } catch (error) {
    line.textContent = error instanceof ApiError ? `Storage usage unavailable: ${describe(error)}` : "";
  }
}

/** Items end or go in bursts: one usage request for a burst. */
function loadUsageSoon() {
  if (!state.api) return;
  clearTimeout(state.usageTimer);
  state.usageTimer = setTimeout(loadUsage, USAGE_DELAY_MS);
}

// --- one place where an item's news arrives ------------------------------------------------

function knownItem(id) {
  if (state.shown?.id === id) return state.shown;
  return state.cards.get(id)?.item ?? null;
}

function itemChanged(item) {
  const card = state.cards.get(item.id);
  const before = knownItem(item.id)?.status;
  if (before !== item.status && !fmt.ACTIVE.has(item.status)) loadUsageSoon();
  if (card) {
    card.item = item;
    renderCard(card.element, item);
  }
  if (state.shown?.id === item.id) renderItemPage(item);
}

function itemGone(id) {
  loadUsageSoon();
  const card = state.cards.get(id);
  if (card) {
    card.element.remove();
    state.cards.delete(id);
  }
  $("list-empty").hidden = state.cards.size > 0;
  if (state.shown?.id === id) {
    $("notice").textContent = "The video was deleted.";
    location.hash = "#/";
  }
}

async function refresh(id) {
  try {
    itemChanged(await state.api.item(id));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) itemGone(id);
  }
}

/** Did an event of `id` arrive after event number `mark`? Then an answer read since may be old. */
function heardSince(id, mark) {
  return (state.heard.get(id) ?? 0) > mark;
}

/** Back on the stream after a gap: what is in flight may have moved on meanwhile. */
function onListening() {
  const shown = state.shown ? [state.shown] : [];
  const cards = [...state.cards.values()].map((card) => card.item);
  for (const item of new Set([...shown, ...cards])) {
    if (fmt.ACTIVE.has(item.status) || item.requested_profile) refresh(item.id);
  }
}

/** An item saved elsewhere (another tab, the CLI, the bot) joins the list when it fits. */
async function addNew(id) {
  const { q, status } = state.filters;
  if (!state.listLoaded || q) return;
  try {
    const item = await state.api.item(id);
    if (!state.cards.has(id) && (!status || item.status === status)) addCard(item, true);
  } catch {
    // gone again already, or the server away: the list stays as it is
  }
}

function onItemEvent(id, name, data) {
  state.events += 1;
  state.heard.set(id, state.events);
  if (name === "deleted") {
    itemGone(id);
    return;
  }
  const known = knownItem(id);
  if (!known) {
    if (name === "created") addNew(id);
    return;
  }
  const next = { ...known, status: data.status ?? known.status };
  if (name === "progress") next.progress = data.progress;
  if (name === "retry") next.retry = data.retry;
  itemChanged(next);
  if (name === "status") refresh(id); // the full answer: title, thumbnails, links, error
}

async function retry(id, where) {
  const button = where.querySelector(".retry, #item-retry");
  button.disabled = true;
  try {
    itemChanged(await state.api.retry(id));
  } catch (error) {
    report(error, where.querySelector(".reason, #item-failure-text"));
  } finally {
    button.disabled = false;
  }
}

// --- capture -----------------------------------------------------------------------------

/** The links of a text: words on lines that are not comments (text/uri-list has "# ..."). */
function linksOf(text) {
  const links = text
    .split(/\r\n|\r|\n/)
    .filter((line) => !line.trim().startsWith("#"))
    .flatMap((line) => line.split(/\s+/))
    .filter(Boolean);
  return [...new Set(links)];
}

async function saveLinks(event) {
  event.preventDefault();
  const results = $("capture-results");
  results.replaceChildren();
  const links = linksOf($("links").value);
  if (!links.length) {
    addResult(results, "refused", "Paste at least one link.");
    return;
  }
  if (links.length > MAX_LINKS) {
    addResult(results, "refused", `At most ${MAX_LINKS} links at once; ${links.length} given.`);
    return;
  }
  const options = {
    maxHeight: Number($("max-height").value) || null,
    audioOnly: $("audio-only").checked,
  };
  const button = event.submitter || $("capture").querySelector("button[type=submit]");
  button.disabled = true;
  const refused = [];
  for (const link of links) {
    if (!(await saveLink(link, options, results))) refused.push(link);
  }
  button.disabled = false;
  if (refused.length < links.length) loadUsageSoon();
  $("links").value = refused.join("\n"); // what was refused stays, to fix and send again
}

async function saveLink(link, options, results) {
  try {
    const item = await state.api.capture(link, options);
    addResult(results, "saved", `${item.duplicate ? "Already saved" : "Saved"}: ${link}`);
    if (state.cards.has(item.id)) itemChanged(item);
    else addCard(item, true);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      report(error, results);
      return false;
    }
    addResult(results, "refused", `Refused: ${link}: ${describe(error)}`);
    return false;
  }
}

function addResult(results, kind, text) {
  const line = document.createElement("li");
  line.className = kind;
  line.textContent = text;
  results.append(line);
}

function dropLinks(event) {
  event.preventDefault();
  const data = event.dataTransfer;
  const text = data.getData("text/uri-list") || data.getData("text/plain");
  if (!text) return;
  const area = $("links");
  area.value = [area.value.trim(), ...linksOf(text)].filter(Boolean).join("\n");
  area.focus();
}

// --- the item page -----------------------------------------------------------------------

async function openItemPage(id) {
  show("item-page");
  if (state.shown?.id !== id) {
    leaveItemPage();
    $("item-title").textContent = "Loading…";
  }
  $("item-error").textContent = "";
  try {
    const asked = state.events;
    const item = await state.api.item(id);
    state.shown = item;
    renderItemPage(item);
    if (heardSince(id, asked)) refresh(id);
  } catch (error) {
    $("item-title").textContent = "Video not available";
    report(error, $("item-error"));
  }
  $("item-title").focus();
}

function leaveItemPage() {
  clearTimeout(state.linkTimer);
  state.shown = null;
  state.playerSource = "";
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.removeAttribute("poster");
  player.load();
  $("player-box").hidden = true;
  $("metadata").replaceChildren();
  $("description").textContent = "";
  $("item-status").textContent = "";
  $("item-failure").hidden = true;
  $("item-progress").hidden = true;
}

function renderItemPage(item) {
  state.shown = item;
  document.title = `${fmt.titleOf(item)} · PRSNL Media`;
  $("item-title").textContent = fmt.titleOf(item);
  const profile = item.requested_profile ? `, re-transcoding to ${item.requested_profile}` : "";
  const waiting = item.waiting ? ` — ${item.waiting.detail}` : "";
  $("item-status").textContent = fmt.statusText(item) + profile + waiting;
  showProgress($("item-progress"), item);
  $("item-failure").hidden = item.status !== "failed";
  $("item-failure-text").textContent = item.status === "failed" ? failureText(item) : "";
  const transcodeError = item.status === "ready" && item.error ? failureText(item) : "";
  $("item-error").textContent = transcodeError && `Last re-transcode failed: ${transcodeError}`;
  $("transcode").querySelector("button").disabled = item.status !== "ready";
  renderPlayer(item);
  renderMetadata(item);
  $("description").textContent = item.description || "";
  scheduleLinkRefresh(item);
}

/** A new source only when the video itself changed: a new signed query alone keeps playing. */
function renderPlayer(item, force = false) {
  const player = $("player");
  const video = item.links?.video;
  $("player-box").hidden = !video;
  if (!video) return;
  const poster = fmt.thumbnail(item, 1280);
  if (poster && player.getAttribute("poster") !== poster) player.poster = poster;
  const source = `${pathOf(video)}|${item.profile ?? ""}|${item.size ?? ""}`;
  if (!force && source === state.playerSource) return;
  const resumeAt = state.playerSource ? player.currentTime : 0;
  const wasPlaying = !player.paused;
  state.playerSource = source;
  player.src = video;
  if (resumeAt) player.currentTime = resumeAt;
  if (wasPlaying) player.play().catch(() => {});
}

/** Signed links end at links.expires_at: fetch fresh ones shortly before. */
function scheduleLinkRefresh(item) {
  clearTimeout(state.linkTimer);
  const expires = Date.parse(item.links?.expires_at ?? "");
  if (!Number.isFinite(expires)) return;
  const wait = Math.max(1000, Math.min(expires - Date.now() - LINK_REFRESH_MARGIN_MS, 2 ** 31 - 1));
  state.linkTimer = setTimeout(() => reloadVideo(item.id), wait);
}

async function reloadVideo(id) {
  try {
    const item = await state.api.item(id);
    if (state.shown?.id !== id) return;
    state.shown = item;
    renderItemPage(item);
    renderPlayer(item, true);
  } catch (error) {
    report(error, $("item-error"));
  }
}

function onPlayerError() {
  const player = $("player");
  if (!state.shown || !player.error) return;
  // An expired or revoked link is the likely cause: one fresh link per half minute.
  if (Date.now() - state.lastRecovery > 30_000) {
    state.lastRecovery = Date.now();
    reloadVideo(state.shown.id);
    return;
  }
  const detail = player.error.message || `media error ${player.error.code}`;
  $("item-error").textContent = `The video cannot be played: ${detail}.`;
}

function renderMetadata(item) {
  const rows = [
    ["Status", item.status],
    ["Platform", item.platform],
    ["Source", item.webpage_url || item.url, true],
    ["Uploader", item.uploader],
    ["Uploaded", uploadDate(item.upload_date)],
    ["Duration", fmt.duration(item.duration)],
    ["Resolution", item.width && item.height ? `${item.width} × ${item.height}` : ""],
    ["Frame rate", item.fps ? `${Math.round(item.fps * 100) / 100} fps` : ""],
    ["Codecs", [item.container, item.video_codec, item.audio_codec].filter(Boolean).join(", ")],
    ["Bitrate", item.bitrate ? `${Math.round(item.bitrate / 1000)} kb/s` : ""],
    ["Size", fmt.bytes(item.size)],
    ["Processing", item.action],
    ["Profile", item.profile],
    ["Asked for", optionsText(item.options)],
    ["Saved", fmt.when(item.created_at)],
    ["Ready", fmt.when(item.ready_at)],
    ["Links valid until", fmt.when(item.links?.expires_at)],
  ];
  const list = $("metadata");
  list.replaceChildren();
  for (const [name, value, isLink] of rows) {
    if (!value) continue;
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.append(isLink ? externalLink(value) : value);
    list.append(term, detail);
  }
}

function externalLink(url) {
  const text = document.createTextNode(url);
  if (!/^https?:\/\//i.test(url)) return text;
  const link = document.createElement("a");
  link.href = url;
  link.rel = "noopener noreferrer";
  link.target = "_blank";
  link.append(text);
  return link;
}

function uploadDate(value) {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value || "");
  return match ? `${match[1]}-${match[2]}-${match[3]}` : value || "";
}

function optionsText(options = {}) {
  const parts = [];
  if (options.max_height) parts.push(`at most ${options.max_height}p`);
  if (options.audio_only) parts.push("audio only");
  return parts.join(", ");
}

async function transcode(event) {
  event.preventDefault();
  const item = state.shown;
  if (!item) return;
  const button = $("transcode").querySelector("button");
  button.disabled = true;
  $("item-error").textContent = "";
  try {
    itemChanged(await state.api.transcode(item.id, $("profile").value));
  } catch (error) {
    report(error, $("item-error"));
    button.disabled = false;
  }
}

async function deleteShown() {
  const item = state.shown;
  if (!item) return;
  if (!window.confirm(`Delete “${fmt.titleOf(item)}” and its files?`)) return;
  $("delete").disabled = true;
  try {
    await state.api.remove(item.id);
    itemGone(item.id);
  } catch (error) {
    report(error, $("item-error"));
  } finally {
    $("delete").disabled = false;
  }
}

// --- wiring ------------------------------------------------------------------------------

function filter(event) {
  event?.preventDefault();
  state.filters = { q: $("search").value.trim(), status: $("status-filter").value };
  $("notice").textContent = "";
  loadList(true);
}

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("capture").addEventListener("submit", saveLinks);
  $("links").addEventListener("dragover", (event) => event.preventDefault());
  $("links").addEventListener("drop", dropLinks);
  $("filters").addEventListener("submit", filter);
  $("status-filter").addEventListener("change", filter);
  $("load-more").addEventListener("click", () => loadList(false));
  $("item-retry").addEventListener("click", () => retry(state.shown?.id, $("item-failure")));
  $("transcode").addEventListener("submit", transcode);
  $("delete").addEventListener("click", deleteShown);
  $("player").addEventListener("error", onPlayerError);
  window.addEventListener("hashchange", route);
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) {
    state.api = new Api(key);
    live.start(state.api);
  }
  route();
}

start();
