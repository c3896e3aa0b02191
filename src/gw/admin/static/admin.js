/*
 * gw admin UI: plain ES2020 JavaScript, no build step, no framework, CSP-safe
 * (no inline script/style, no eval, no innerHTML with data).
 * Everything lives in one closure; the only global is `window.gwAdmin`.
 *
 * API contract: docs/admin-api.md. Page config comes from <meta name="gw-*">
 * tags rendered by the server (auth mode/header, CSRF header/token, read-only,
 * schema, version), with GET /api/session as a fallback.
 *
 * Stable test ids (data-testid; the element id is the same unless noted):
 *   Page ........... app (<main>; hidden while signed out)
 *   Top bar ........ schema-name, version, read-only-badge, conn-status, last-updated,
 *                    refresh-toggle (checkbox, checked = live refresh every 5 s),
 *                    refresh-now, sign-out
 *   Sign-in ........ auth-panel, token-form, token-input, token-submit, auth-error, auth-reload
 *   Overview ....... count-total, count-ready, count-scheduled, count-locked, count-failed
 *                    (numbers); card-total, card-ready, card-scheduled, card-locked,
 *                    card-failed (buttons that set the state filter; aria-pressed)
 *   Filters ........ filters, filter-state (<select>: all|ready|scheduled|locked|failed),
 *                    filter-identifier, filter-queue, filter-search (debounced 300 ms),
 *                    filter-clear
 *   Job table ...... job-table, job-tbody, job-empty, select-all,
 *                    job-row-<id> (<tr>, click/Enter opens the detail drawer),
 *                    job-select-<id> (row checkbox), job-state-<id> (state badge)
 *   Paging ......... pager, page-limit (<select>: 25|50|100|200|500), page-prev,
 *                    page-next, page-info
 *   Actions ........ action-bar, selection-count, action-complete, action-run-now,
 *                    action-fail-reason, action-fail, action-cancel (asks for an optional
 *                    reason in the confirm dialog), reschedule-run-at (datetime-local),
 *                    reschedule-priority, reschedule-attempts, reschedule-max-attempts,
 *                    action-reschedule (needs at least one reschedule field)
 *   Detail drawer .. job-detail, job-detail-title, job-detail-close, job-detail-fields,
 *                    detail-field-<ListedJob field> (<dd>), job-detail-payload,
 *                    job-detail-error, detail-complete, detail-run-now, detail-fail
 *                    (uses action-fail-reason when filled), detail-cancel, detail-remove-key
 *   Add job ........ add-job-open, add-job-dialog, add-job-identifier, add-job-payload,
 *                    add-job-payload-error, add-job-queue, add-job-run-at,
 *                    add-job-max-attempts, add-job-priority, add-job-key, add-job-key-mode,
 *                    add-job-flags, add-job-error, add-job-submit, add-job-cancel,
 *                    add-job-close
 *   Maintenance .... maint-migrate, cleanup-task-delete-permanently-failed-jobs,
 *                    cleanup-task-gc-task-identifiers, cleanup-task-gc-job-queues,
 *                    maint-cleanup, maint-force-unlock-ids, maint-force-unlock,
 *                    sweep-dry-run, sweep-threshold, sweep-recovery-delay, maint-sweep,
 *                    remove-key-input, action-remove-by-key, maint-result (<pre> JSON),
 *                    maint-result-clear
 *   Queues/workers . queue-table, queue-row-<queue_name>, locked-workers-table,
 *                    locked-worker-row-<worker_id>, force-unlock-worker-<worker_id>,
 *                    active-workers-table, active-worker-row-<worker_id>
 *   Limits ......... limits-table, limits-tbody, limits-count, limits-empty (none configured),
 *                    limits-error, limits-error-text, limit-row-<key> (key "task:<id>" or
 *                    "queue:<name>"), limit-rate-<key>, limit-burst-<key>, limit-tokens-<key>,
 *                    limit-max-<key>, limit-running-<key>
 *   Activity ....... activity (section), chart-range (group of buttons chart-range-15m|1h|6h|24h|7d,
 *                    aria-pressed), chart-task, chart-queue (filters, debounced), chart-live
 *                    (checkbox: refresh every 10 s, a quarter bucket for long ranges, at most
 *                    5 min, while the charts are on screen and the tab is visible), chart-summary, chart-error, chart-error-text;
 *                    chart-throughput, chart-failures (stacked bars by task: <svg data-bars>,
 *                    rect.bar[data-task]), chart-duration, chart-wait (p50/p90/p99 lines),
 *                    chart-backlog (ready/scheduled/running/failed lines): <svg data-points>,
 *                    path.line[data-line][data-points]; chart-empty (text inside an empty
 *                    chart); legend-throughput, legend-failures, legend-duration, legend-wait,
 *                    legend-backlog (<ul>) with legend-item (<li data-name>)
 *   History ........ history (section), history-filters, history-outcome (<select>),
 *                    history-task, history-queue, history-job (debounced), history-clear,
 *                    history-table, history-tbody, history-row-<history id> (<tr>, click/Enter
 *                    opens the attempt drawer), history-outcome-<history id> (badge),
 *                    history-duration-<history id>, history-empty, history-empty-title,
 *                    history-empty-text, history-count, history-pager, history-limit,
 *                    history-page-info, history-newer, history-older (paging with before_id)
 *   Attempt drawer . history-detail, history-detail-title, history-detail-close,
 *                    history-detail-fields, history-field-<HistoryItem field> (<dd>),
 *                    history-detail-outcome, history-detail-result, history-detail-error,
 *                    history-detail-payload, history-detail-job (opens the job drawer),
 *                    history-detail-attempts (filters History by the job); in the job drawer
 *                    detail-history (shows the job's attempts in History)
 *   Dialogs/toasts . confirm-dialog, confirm-title, confirm-message, confirm-details,
 *                    confirm-input (optional text, e.g. the cancel reason), confirm-ok,
 *                    confirm-cancel, toasts, toast (each toast; class
 *                    toast-error|toast-success|toast-warning|toast-info), toast-message,
 *                    toast-details (per-item lines, e.g. each cancelled job), toast-dismiss
 *
 * Confirmation: every write asks in the in-page <dialog> (confirm-ok / confirm-cancel)
 * except "Add job" (its own dialog is the confirmation) and a dry-run sweep.
 * Keyboard: "/" focuses the search box, "r" refreshes, Escape closes the drawer.
 * Charts are inline SVG drawn here (no charting library: the page works offline, under
 * its strict CSP, with no dependency); colours come from CSS classes.
 */
"use strict";

(() => {
  // ------------------------------------------------------------------ constants
  const STATES = ["ready", "scheduled", "locked", "failed"];
  const LIMITS = [25, 50, 100, 200, 500];
  const REFRESH_MS = 5000;
  const SEARCH_DEBOUNCE_MS = 300;
  const TOKEN_KEY = "gw-admin-token";
  const LIVE_KEY = "gw-admin-live";
  const DEFAULT_AUTH_HEADER = "x-graphile-worker-admin-token";
  const DEFAULT_CSRF_HEADER = "x-graphile-worker-admin-csrf";
  const MAX_TOASTS = 5;
  const MAX_TOAST_DETAILS = 8;
  const CANCEL_FOLLOW_UP_MS = 1500;
  const RATE_UNITS = [["s", 1], ["m", 60], ["h", 3600], ["d", 86400]];

  // ------------------------------------------------------------------ state
  const S = {
    authMode: "none",
    authHeader: DEFAULT_AUTH_HEADER,
    csrfHeader: DEFAULT_CSRF_HEADER,
    csrfToken: "",
    readOnly: false,
    schema: "",
    version: "",
    authModeKnown: false,
    authed: false,
    live: true,
    filters: { state: "all", identifier: "", queue: "", search: "" },
    limit: 50,
    offset: 0,
    jobs: [],
    hasMore: false,
    selected: new Set(),
    detailId: null,
    detailReturnFocus: null,
    overview: null,
    limits: [],
    limitsError: null,
    history: {
      filters: { outcome: "", task: "", queue: "", job_id: "" },
      limit: 50,
      cursors: [], // before_id of each page after the first (a stack: Newer pops)
      entries: [],
      hasMore: false,
      nextBeforeId: null,
      error: null,
      errorField: null,
      detailId: null,
      detailEntry: null,
      detailReturnFocus: null,
      seq: 0,
    },
    charts: {
      range: "1h",
      task: "",
      queue: "",
      live: true,
      onScreen: false,
      loading: false,
      data: null,
      error: null,
      errorField: null,
      updated: null,
      seq: 0,
    },
    skewMs: 0,
    jobsSeq: 0,
    refreshing: false,
    busy: 0,
    lastUpdated: null,
    lastRefreshError: null,
    timer: null,
  };

  // ------------------------------------------------------------------ DOM helpers
  const $ = (id) => document.getElementById(id);

  /** createElement with text children only (never HTML). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [name, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === "class") el.className = value;
        else if (name === "text") el.textContent = String(value);
        else if (name.startsWith("on") && typeof value === "function") {
          el.addEventListener(name.slice(2), value);
        } else if (name === "checked" || name === "disabled" || name === "indeterminate") {
          el[name] = Boolean(value);
        } else el.setAttribute(name, value === true ? "" : String(value));
      }
    }
    appendChildren(el, children);
    return el;
  }

  function appendChildren(el, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const none = (text = "—") => h("span", { class: "none", text });

  function setBusy(button, busy) {
    if (!button) return;
    button.classList.toggle("is-busy", busy);
    button.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function anyDialogOpen() {
    return document.querySelector("dialog[open]") !== null;
  }

  function isTypingTarget(el) {
    if (!el) return false;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function debounce(fn, ms) {
    let t = null;
    const wrapped = (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
    wrapped.flush = () => {
      clearTimeout(t);
      fn();
    };
    return wrapped;
  }

  // ------------------------------------------------------------------ formatting
  const pad = (n, w = 2) => String(Math.abs(Math.trunc(n))).padStart(w, "0");

  function serverNow() {
    return Date.now() + S.skewMs;
  }

  /** "2026-01-01 10:00:05" in the browser's local time zone. */
  function fmtAbs(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** Compact relative time: "in 5m", "3h ago", "just now". */
  function fmtRel(iso) {
    if (!iso) return "";
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return "";
    const diff = t - serverNow();
    const abs = Math.abs(diff);
    if (abs < 5000) return "just now";
    const units = [["y", 31536000000], ["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000]];
    let text = "";
    for (const [unit, ms] of units) {
      if (abs >= ms) {
        const major = Math.floor(abs / ms);
        text = `${major}${unit}`;
        const idx = units.findIndex((u) => u[0] === unit);
        const next = units[idx + 1];
        if (next && major < 10) {
          const minor = Math.floor((abs - major * ms) / next[1]);
          if (minor > 0) text += ` ${minor}${next[0]}`;
        }
        break;
      }
    }
    return diff > 0 ? `in ${text}` : `${text} ago`;
  }

  function fmtClock(date) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  /** datetime-local value (local wall time) -> ISO 8601 with the local offset. */
  function localInputToIso(value) {
    if (!value) return undefined;
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return null;
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
      `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
      `${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  }

  function fmtJson(value) {
    try {
      return JSON.stringify(value, null, 2);
    } catch {
      return String(value);
    }
  }

  function fmtCount(n) {
    return typeof n === "number" ? n.toLocaleString() : "–";
  }

  function plural(n, word, many = `${word}s`) {
    return `${n} ${n === 1 ? word : many}`;
  }

  /** "20", "2.5", "8.57": at most two decimals, never an exponent (as gw limits prints). */
  function fmtNumber(value) {
    return Number(value).toFixed(2).replace(/0+$/, "").replace(/\.$/, "");
  }

  /** Jobs per second as "20/s", "2.5/s", or per minute/hour/day when slower: "30/m", "1/h". */
  function fmtRate(perSecond) {
    if (perSecond >= 1) return `${fmtNumber(perSecond)}/s`;
    for (const [unit, span] of RATE_UNITS) {
      const count = perSecond * span;
      const whole = Math.round(count);
      if (count >= 1 && Math.abs(count - whole) <= 1e-9 * Math.max(count, whole)) return `${whole}/${unit}`;
    }
    for (const [unit, span] of RATE_UNITS) {
      const count = perSecond * span;
      if (count >= 1) return `${fmtNumber(count)}/${unit}`;
    }
    return `${Number((perSecond * 86400).toPrecision(2))}/d`;
  }

  /** Tokens rounded down to two decimals: never shows a start that is not allowed. */
  function fmtTokens(tokens) {
    return fmtNumber(Math.floor(Math.max(tokens, 0) * 100) / 100);
  }

  function timeCell(iso) {
    if (!iso) return none();
    return h("span", { class: "cell-time", title: iso },
      fmtRel(iso), h("span", { class: "sub", text: fmtAbs(iso) }));
  }

  function stateBadge(state, testId) {
    const known = STATES.includes(state);
    return h("span", {
      class: `badge ${known ? `state-${state}` : ""}`,
      "data-testid": testId,
      text: state || "unknown",
    });
  }

  // ------------------------------------------------------------------ config
  function readMeta(name) {
    const el = document.querySelector(`meta[name="${name}"]`);
    const value = el ? el.getAttribute("content") || "" : "";
    // An unsubstituted "{{placeholder}}" counts as missing.
    return /^\{\{.*\}\}$/.test(value) ? "" : value;
  }

  function loadConfigFromMeta() {
    const mode = readMeta("gw-auth-mode");
    if (["basic", "bearer", "header", "none"].includes(mode)) S.authMode = mode;
    S.authHeader = readMeta("gw-auth-header") || DEFAULT_AUTH_HEADER;
    S.csrfHeader = readMeta("gw-csrf-header") || DEFAULT_CSRF_HEADER;
    S.csrfToken = readMeta("gw-csrf-token");
    S.readOnly = readMeta("gw-read-only") === "true";
    S.schema = readMeta("gw-schema");
    S.version = readMeta("gw-version");
    S.authModeKnown = Boolean(mode);
  }

  function applySession(session) {
    if (!session || typeof session !== "object") return;
    if (!S.csrfToken && session.csrf_token) S.csrfToken = session.csrf_token;
    if (session.csrf_header && !readMeta("gw-csrf-header")) S.csrfHeader = session.csrf_header;
    if (session.read_only === true) S.readOnly = true;
    if (session.schema && !S.schema) S.schema = session.schema;
    if (session.version && !S.version) S.version = session.version;
    const auth = session.auth || {};
    if (!S.authModeKnown && auth.mode) S.authMode = auth.mode;
    if (auth.header_name && !readMeta("gw-auth-header")) S.authHeader = auth.header_name;
    applyConfigToPage();
  }

  function applyConfigToPage() {
    document.body.classList.toggle("is-read-only", S.readOnly);
    $("read-only-badge").hidden = !S.readOnly;
    for (const el of document.querySelectorAll("[data-write] button, [data-write] input, [data-write] select, button[data-write]")) {
      if (S.readOnly) el.disabled = true;
    }
    if (S.schema) {
      $("schema-name").textContent = S.schema;
      document.title = `gw admin · ${S.schema}`;
    }
    if (S.version) {
      $("version").textContent = `v${S.version}`;
      $("footer-version").textContent = `v${S.version}`;
    }
    $("footer-auth").textContent = S.authMode;
    // The browser cannot attach a token to a plain link: only offer it where it works.
    const openapi = $("footer-openapi");
    if (openapi) openapi.hidden = usesToken();
    $("sign-out").hidden = !(usesToken() && getToken());
  }

  // ------------------------------------------------------------------ token storage
  function usesToken() {
    return S.authMode === "bearer" || S.authMode === "header";
  }

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage unavailable: the token then lives only until reload */
    }
  }

  // ------------------------------------------------------------------ API client
  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  function requestHeaders(method) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token && S.authMode === "bearer") headers.Authorization = `Bearer ${token}`;
    if (token && S.authMode === "header") headers[S.authHeader] = token;
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (S.csrfToken) headers[S.csrfHeader] = S.csrfToken;
    }
    return headers;
  }

  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: requestHeaders(method),
        credentials: "same-origin",
        cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "network", `Cannot reach the admin server (${err.message || err})`);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const e = (data && data.error) || {};
      const error = new ApiError(res.status, e.code || `http_${res.status}`,
        e.message || `HTTP ${res.status} ${res.statusText}`.trim(), e.field);
      if (res.status === 401) onUnauthorized(error);
      throw error;
    }
    if (data === null || typeof data !== "object") {
      throw new ApiError(res.status, "bad_response", "The server answered with something that is not JSON");
    }
    return data;
  }

  const get = (path) => api("GET", path);
  const post = (path, body) => api("POST", path, body);

  // ------------------------------------------------------------------ toasts
  function toastContainer() {
    return $("toasts");
  }

  /** Keep the toast stack above modal dialogs by using the top layer when possible. */
  function raiseToasts() {
    const box = toastContainer();
    if (typeof box.showPopover !== "function") return;
    if (!box.hasAttribute("popover")) box.setAttribute("popover", "manual");
    try {
      if (box.matches(":popover-open")) box.hidePopover();
      if (box.childElementCount > 0) box.showPopover();
    } catch {
      /* popover unsupported in this state: the fixed stack still shows */
    }
  }

  function toast({ kind = "info", title, message, field, details, timeout }) {
    const box = toastContainer();
    const dismiss = () => {
      el.remove();
      raiseToasts();
    };
    const el = h("div", {
      class: `toast toast-${kind}`,
      "data-testid": "toast",
      "data-kind": kind,
      role: kind === "error" ? "alert" : "status",
    },
    h("div", { class: "toast-body" },
      title ? h("div", { class: "toast-title", text: title }) : null,
      message ? h("div", { class: "toast-message", "data-testid": "toast-message", text: message }) : null,
      field ? h("div", { class: "toast-field", "data-testid": "toast-field", text: `field: ${field}` }) : null,
      details && details.length ? toastDetails(details) : null),
    h("button", {
      type: "button",
      class: "btn btn-ghost btn-icon",
      "data-testid": "toast-dismiss",
      "aria-label": "Dismiss notification",
      text: "✕",
      onclick: dismiss,
    }));
    box.append(el);
    while (box.childElementCount > MAX_TOASTS) box.firstElementChild.remove();
    raiseToasts();
    const ms = timeout ?? (kind === "error" ? 0 : 4500);
    if (ms > 0) setTimeout(() => el.isConnected && dismiss(), ms);
    return el;
  }

  function toastDetails(lines) {
    const shown = lines.slice(0, MAX_TOAST_DETAILS);
    if (lines.length > shown.length) shown.push(`… and ${lines.length - shown.length} more`);
    return h("ul", { class: "toast-details", "data-testid": "toast-details" },
      shown.map((line) => h("li", { text: line })));
  }

  function toastError(title, err) {
    if (err instanceof ApiError && err.status === 401) return null; // the sign-in panel explains it
    return toast({
      kind: "error",
      title,
      message: err && err.message ? err.message : String(err),
      field: err && err.field ? err.field : null,
    });
  }

  const toastOk = (title, message) => toast({ kind: "success", title, message });

  // ------------------------------------------------------------------ confirm dialog
  let confirmResolve = null;

  /** In-page confirmation; resolves true on OK, false on cancel/Escape. */
  function confirmAction({
    title, message, details = [], okLabel = "Confirm", cancelLabel = "Cancel", danger = true, input = null,
  }) {
    const dialog = $("confirm-dialog");
    if (confirmResolve) confirmResolve(false);
    $("confirm-title").textContent = title;
    $("confirm-message").textContent = message;
    const list = $("confirm-details");
    list.replaceChildren(...details.map((d) => h("li", { text: d })));
    list.hidden = details.length === 0;
    const ok = $("confirm-ok");
    ok.textContent = okLabel;
    ok.className = `btn ${danger ? "btn-danger" : "btn-primary"}`;
    $("confirm-cancel").textContent = cancelLabel;
    // An optional text answer (e.g. a reason), read back with confirmInputValue().
    const field = $("confirm-input");
    $("confirm-input-wrap").hidden = !input;
    field.value = input ? input.value || "" : "";
    field.placeholder = input ? input.placeholder || "" : "";
    $("confirm-input-label").textContent = input ? input.label : "";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      confirmResolve = resolve;
      dialog.showModal();
      (input ? field : $("confirm-cancel")).focus();
    });
  }

  function confirmInputValue() {
    return $("confirm-input").value.trim();
  }

  function initConfirmDialog() {
    const dialog = $("confirm-dialog");
    $("confirm-ok").value = "ok";
    $("confirm-cancel").addEventListener("click", () => dialog.close("cancel"));
    dialog.addEventListener("close", () => {
      const resolve = confirmResolve;
      confirmResolve = null;
      if (resolve) resolve(dialog.returnValue === "ok");
      updateStatus();
    });
  }

  function idList(ids) {
    const shown = ids.slice(0, 12).map((id) => {
      const job = S.jobs.find((j) => j.id === id);
      return job ? `#${id} ${job.task_identifier}${job.queue_name ? ` (${job.queue_name})` : ""}` : `#${id}`;
    });
    if (ids.length > 12) shown.push(`… and ${ids.length - 12} more`);
    return shown;
  }

  // ------------------------------------------------------------------ auth UI
  function onUnauthorized(error) {
    const wasAuthed = S.authed;
    S.authed = false;
    document.body.classList.add("needs-auth");
    $("auth-panel").hidden = false;
    const tokenMode = usesToken() || !S.authModeKnown;
    $("auth-token-fields").hidden = !tokenMode;
    $("auth-basic-fields").hidden = tokenMode;
    const errEl = $("auth-error");
    if (tokenMode) {
      const hadToken = Boolean(getToken());
      $("auth-help").textContent = S.authMode === "header"
        ? `Enter the admin token. It is sent in the ${S.authHeader} header.`
        : "Enter the admin bearer token printed by gw admin at startup.";
      if (hadToken) {
        setToken("");
        errEl.textContent = wasAuthed ? "Your session ended: the token is no longer accepted." : `Token rejected: ${error.message}`;
        errEl.hidden = false;
      }
      $("token-input").focus();
    } else if (S.authMode === "basic") {
      $("auth-help").textContent = "The server did not accept your browser's credentials. Reload the page to sign in again.";
    } else {
      $("auth-help").textContent = `The server refused the request: ${error.message}`;
    }
    $("sign-out").hidden = true;
    updateStatus();
  }

  function showApp() {
    S.authed = true;
    document.body.classList.remove("needs-auth", "is-booting");
    $("auth-panel").hidden = true;
    $("auth-error").hidden = true;
    $("sign-out").hidden = !(usesToken() && getToken());
  }

  function initAuth() {
    $("token-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      const errEl = $("auth-error");
      if (!token) {
        errEl.textContent = "Enter a token.";
        errEl.hidden = false;
        return;
      }
      errEl.hidden = true;
      setToken(token);
      $("token-input").value = "";
      setBusy($("token-submit"), true);
      try {
        await start();
      } finally {
        setBusy($("token-submit"), false);
      }
    });
    $("sign-out").addEventListener("click", () => {
      setToken("");
      closeDetail();
      closeHistoryDetail({ restoreFocus: false });
      S.jobs = [];
      S.overview = null;
      S.history.entries = [];
      S.charts.data = null;
      $("job-tbody").replaceChildren();
      $("history-tbody").replaceChildren();
      onUnauthorized(new ApiError(401, "unauthorized", "Signed out"));
      $("auth-error").hidden = true;
    });
    $("auth-reload").addEventListener("click", () => window.location.reload());
  }

  // ------------------------------------------------------------------ connection status / live refresh
  function updateStatus() {
    const box = $("conn-status");
    const label = $("last-updated");
    box.classList.remove("is-ok", "is-error", "is-paused", "is-live");
    if (!S.authed) {
      label.textContent = "Signed out";
      return;
    }
    if (S.lastRefreshError) {
      box.classList.add("is-error");
      label.textContent = "Connection problem";
      box.title = S.lastRefreshError;
      return;
    }
    box.title = S.lastUpdated ? `Last updated ${S.lastUpdated.toLocaleString()}` : "";
    const when = S.lastUpdated ? fmtClock(S.lastUpdated) : "—";
    if (S.live && (document.hidden || anyDialogOpen())) {
      box.classList.add("is-paused");
      label.textContent = `Paused · ${when}`;
    } else if (S.live) {
      box.classList.add("is-ok", "is-live");
      label.textContent = `Live · ${when}`;
    } else {
      box.classList.add("is-ok");
      label.textContent = `Updated ${when}`;
    }
  }

  function tick() {
    updateStatus();
    if (!S.live || !S.authed || document.hidden || anyDialogOpen() || S.busy > 0 || S.refreshing) return;
    refreshAll({ quiet: true });
  }

  function startTimer() {
    if (S.timer === null) S.timer = setInterval(tick, REFRESH_MS);
  }

  function initLive() {
    const toggle = $("refresh-toggle");
    try {
      const stored = localStorage.getItem(LIVE_KEY);
      if (stored !== null) S.live = stored === "1";
    } catch {
      /* ignore */
    }
    toggle.checked = S.live;
    toggle.setAttribute("aria-checked", String(S.live));
    toggle.addEventListener("change", () => {
      S.live = toggle.checked;
      toggle.setAttribute("aria-checked", String(S.live));
      try {
        localStorage.setItem(LIVE_KEY, S.live ? "1" : "0");
      } catch {
        /* ignore */
      }
      updateStatus();
      if (S.live) tick();
    });
    $("refresh-now").addEventListener("click", () => {
      refreshAll({ quiet: false });
      loadCharts();
    });
    document.addEventListener("visibilitychange", () => {
      updateStatus();
      if (!document.hidden && S.live) tick();
    });
  }

  async function refreshAll({ quiet = true } = {}) {
    if (!S.authed) return;
    S.refreshing = true;
    const btn = $("refresh-now");
    if (!quiet) setBusy(btn, true);
    try {
      const results = await Promise.allSettled([loadOverview(), loadJobs(), loadLimits(), loadHistory()]);
      const failed = results.find((r) => r.status === "rejected");
      if (failed) {
        const err = failed.reason;
        const message = err && err.message ? err.message : String(err);
        if (!quiet || S.lastRefreshError !== message) toastError("Refresh failed", err);
        if (!(err instanceof ApiError && err.status === 401)) S.lastRefreshError = message;
      } else {
        S.lastRefreshError = null;
        S.lastUpdated = new Date();
      }
    } finally {
      S.refreshing = false;
      if (!quiet) setBusy(btn, false);
      updateStatus();
    }
  }

  // ------------------------------------------------------------------ overview
  async function loadOverview() {
    const data = await get("/api/overview");
    S.overview = data;
    if (data.now) {
      const t = Date.parse(data.now);
      if (!Number.isNaN(t)) S.skewMs = t - Date.now();
    }
    renderOverview(data);
  }

  function renderOverview(data) {
    const counts = data.counts || {};
    for (const key of ["total", ...STATES]) {
      const el = $(`count-${key}`);
      el.textContent = fmtCount(counts[key]);
      el.classList.toggle("is-nonzero", (counts[key] || 0) > 0);
    }
    renderQueues(data.queues || []);
    renderLockedWorkers(data.locked_workers || []);
    renderActiveWorkers(data.active_workers || []);
    fillDatalist("task-options", data.tasks || []);
    fillDatalist("queue-options", (data.queues || []).map((q) => q.queue_name));
    const workerIds = new Set([
      ...(data.locked_workers || []).map((w) => w.worker_id),
      ...(data.active_workers || []).map((w) => w.worker_id),
    ]);
    fillDatalist("worker-options", [...workerIds]);
  }

  function fillDatalist(id, values) {
    const list = $(id);
    const sorted = [...new Set(values.filter(Boolean))].sort();
    const current = [...list.options].map((o) => o.value).join("\n");
    if (current === sorted.join("\n")) return;
    list.replaceChildren(...sorted.map((v) => h("option", { value: v })));
  }

  function renderTable(tbodyId, emptyId, countId, rows, rowFn, noun) {
    $(tbodyId).replaceChildren(...rows.map(rowFn));
    $(emptyId).hidden = rows.length > 0;
    $(tbodyId).closest("table").hidden = rows.length === 0;
    $(countId).textContent = rows.length ? plural(rows.length, noun) : "";
  }

  function renderQueues(queues) {
    renderTable("queue-tbody", "queue-empty", "queues-count", queues, (q) => h("tr", {
      "data-testid": `queue-row-${q.queue_name}`,
    },
    h("td", null, h("button", {
      type: "button",
      class: "link-btn cell-mono",
      title: `Show jobs in queue ${q.queue_name}`,
      text: q.queue_name,
      onclick: () => setFilter({ queue: q.queue_name }, true),
    })),
    h("td", { class: "col-num", text: fmtCount(q.job_count) }),
    h("td", null, q.locked_at ? timeCell(q.locked_at) : h("span", { class: "badge state-ready", text: "free" })),
    h("td", { class: "cell-mono cell-truncate", title: q.locked_by || "" }, q.locked_by || none())), "queue");
  }

  function renderLockedWorkers(workers) {
    renderTable("locked-workers-tbody", "locked-workers-empty", "locked-workers-count", workers, (w) => h("tr", {
      "data-testid": `locked-worker-row-${w.worker_id}`,
    },
    h("td", { class: "cell-mono cell-truncate", title: w.worker_id, text: w.worker_id }),
    h("td", { class: "col-num", text: fmtCount(w.locked_jobs) }),
    h("td", { class: "col-num", text: fmtCount(w.locked_queues) }),
    h("td", null, timeCell(w.oldest_locked_at)),
    h("td", { "data-write": true, class: "col-num" }, h("button", {
      type: "button",
      class: "btn btn-sm btn-danger-outline",
      "data-testid": `force-unlock-worker-${w.worker_id}`,
      "aria-label": `Force unlock worker ${w.worker_id}`,
      disabled: S.readOnly,
      text: "Unlock",
      onclick: (event) => forceUnlock([w.worker_id], event.currentTarget),
    }))), "worker");
  }

  function renderActiveWorkers(workers) {
    renderTable("active-workers-tbody", "active-workers-empty", "active-workers-count", workers, (w) => {
      const meta = w.metadata === undefined || w.metadata === null ? "" : JSON.stringify(w.metadata);
      return h("tr", { "data-testid": `active-worker-row-${w.worker_id}` },
        h("td", { class: "cell-mono cell-truncate", title: w.worker_id, text: w.worker_id }),
        h("td", null, timeCell(w.last_heartbeat_at)),
        h("td", null, timeCell(w.started_at)),
        h("td", { class: "cell-mono cell-truncate", title: meta }, meta && meta !== "{}" ? meta : none()));
    }, "worker");
  }

  // ------------------------------------------------------------------ limits
  /** Limits fail on their own: a database without gw's limits tables still shows the rest. */
  async function loadLimits() {
    try {
      const data = await get("/api/limits");
      S.limits = Array.isArray(data.limits) ? data.limits : [];
      S.limitsError = null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      S.limitsError = err && err.message ? err.message : String(err);
    }
    renderLimits();
  }

  function limitKeyCell(limit) {
    const kind = limit.kind || "other";
    const name = limit.name || limit.key;
    const chip = h("span", { class: `chip chip-${kind}`, text: kind });
    if (kind === "other") return h("td", { class: "cell-mono cell-truncate", title: limit.key }, limit.key);
    const filter = kind === "task" ? { identifier: name } : { queue: name };
    return h("td", { class: "cell-truncate", title: limit.key }, chip, h("button", {
      type: "button",
      class: "link-btn cell-mono",
      title: `Show jobs of ${kind} ${name}`,
      text: name,
      onclick: () => setFilter(filter, true),
    }));
  }

  function limitRow(limit) {
    const key = limit.key;
    const max = limit.max_concurrency;
    const running = typeof limit.running === "number" ? limit.running : 0;
    const full = max !== null && max !== undefined && running >= max;
    const tokens = limit.tokens;
    const noTokens = tokens !== null && tokens !== undefined && tokens < 1;
    return h("tr", { "data-testid": `limit-row-${key}` },
      limitKeyCell(limit),
      h("td", { class: "col-num", "data-testid": `limit-rate-${key}`, title: limit.rate === null ? "" : `${limit.rate} jobs per second` },
        limit.rate === null || limit.rate === undefined ? none() : fmtRate(limit.rate)),
      h("td", { class: "col-num", "data-testid": `limit-burst-${key}` },
        limit.burst === null || limit.burst === undefined ? none() : fmtNumber(limit.burst)),
      h("td", {
        class: `col-num ${noTokens ? "limit-exhausted" : ""}`,
        "data-testid": `limit-tokens-${key}`,
        title: tokens === null || tokens === undefined ? "No rate limit" : "Starts allowed right now",
      }, tokens === null || tokens === undefined ? none() : fmtTokens(tokens)),
      h("td", { class: "col-num", "data-testid": `limit-max-${key}` }, max === null || max === undefined ? none() : fmtCount(max)),
      h("td", { class: `col-num ${full ? "limit-exhausted" : ""}`, title: full ? "At its concurrency limit" : "" },
        h("span", { "data-testid": `limit-running-${key}`, text: fmtCount(running) }),
        max ? h("meter", { class: "limit-meter", min: "0", max: String(max), value: String(Math.min(running, max)), "aria-label": `${running} of ${max} running` }) : null),
      h("td", null, timeCell(limit.updated_at)));
  }

  function renderLimits() {
    const limits = S.limits;
    $("limits-tbody").replaceChildren(...limits.map(limitRow));
    const failed = S.limitsError !== null;
    $("limits-table").hidden = limits.length === 0;
    $("limits-empty").hidden = limits.length > 0 || failed;
    $("limits-error").hidden = !failed;
    $("limits-error-text").textContent = S.limitsError || "";
    $("limits-count").textContent = limits.length ? plural(limits.length, "limit") : "";
  }

  // ------------------------------------------------------------------ history
  const OUTCOMES = ["completed", "failed", "permanently_failed", "cancelled", "skipped", "rescheduled", "interrupted"];
  const OUTCOME_LABELS = {
    completed: "completed",
    failed: "failed",
    permanently_failed: "permanently failed",
    cancelled: "cancelled",
    skipped: "skipped",
    rescheduled: "rescheduled",
    interrupted: "interrupted",
  };
  const HISTORY_LIMITS = [25, 50, 100, 200];
  const HISTORY_FILTER_INPUTS = { task: "history-task", queue: "history-queue", job_id: "history-job" };

  function markInvalid(input, invalid) {
    if (invalid) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function outcomeBadge(outcome, testId) {
    const known = OUTCOMES.includes(outcome);
    return h("span", {
      class: `badge ${known ? `outcome-${outcome}` : ""}`,
      "data-testid": testId,
      text: OUTCOME_LABELS[outcome] || outcome || "unknown",
    });
  }

  /** Seconds as "350 ms", "2.5 s", "4m 10s", "3h 5m". */
  function fmtDuration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
    const abs = Math.abs(seconds);
    const sign = seconds < 0 ? "-" : "";
    if (abs === 0) return "0 s";
    if (abs < 0.001) return `${sign}${fmtNumber(abs * 1e6)} µs`;
    if (abs < 1) return `${sign}${abs < 0.01 ? fmtNumber(abs * 1000) : Math.round(abs * 1000)} ms`;
    if (abs < 60) return `${sign}${fmtNumber(abs)} s`;
    if (abs < 3600) {
      const m = Math.floor(abs / 60);
      const s = Math.round(abs - m * 60);
      return `${sign}${m}m${s ? ` ${s}s` : ""}`;
    }
    if (abs < 86400) {
      const hrs = Math.floor(abs / 3600);
      const m = Math.round((abs - hrs * 3600) / 60);
      return `${sign}${hrs}h${m ? ` ${m}m` : ""}`;
    }
    const d = Math.floor(abs / 86400);
    const hrs = Math.round((abs - d * 86400) / 3600);
    return `${sign}${d}d${hrs ? ` ${hrs}h` : ""}`;
  }

  function preview(value, max = 120) {
    let text;
    try {
      text = JSON.stringify(value);
    } catch {
      text = String(value);
    }
    if (text === undefined) text = String(value);
    return text.length > max ? `${text.slice(0, max)}…` : text;
  }

  function historyFiltered() {
    return Object.values(S.history.filters).some(Boolean);
  }

  function historyQuery() {
    const H = S.history;
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(H.filters)) if (value) q.set(key, value);
    q.set("limit", String(H.limit));
    const cursor = H.cursors[H.cursors.length - 1];
    if (cursor) q.set("before_id", String(cursor));
    return q;
  }

  /** The history fails on its own: a database without gw's history table still shows the rest. */
  async function loadHistory() {
    const H = S.history;
    const seq = ++H.seq;
    const wrap = $("history");
    wrap.classList.add("is-loading");
    try {
      const data = await get(`/api/history?${historyQuery()}`);
      if (seq !== H.seq) return;
      const entries = Array.isArray(data.entries) ? data.entries : [];
      if (entries.length === 0 && H.cursors.length > 0) {
        // An older page emptied (its rows were pruned): back to the newest.
        H.cursors = [];
        wrap.classList.remove("is-loading");
        await loadHistory();
        return;
      }
      H.entries = entries;
      H.hasMore = Boolean(data.has_more);
      H.nextBeforeId = data.next_before_id ?? null;
      H.error = null;
      H.errorField = null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      if (seq !== H.seq) return;
      H.error = err && err.message ? err.message : String(err);
      H.errorField = err && err.field ? err.field : null;
    } finally {
      if (seq === H.seq) wrap.classList.remove("is-loading");
    }
    renderHistory();
  }

  function reloadHistory() {
    loadHistory().catch(() => { /* 401: the sign-in panel explains it */ });
  }

  function setHistoryEmpty(title, ...text) {
    $("history-empty-title").textContent = title;
    $("history-empty-text").replaceChildren(...text);
  }

  function renderHistory() {
    const H = S.history;
    const entries = H.error ? [] : H.entries;
    $("history-tbody").replaceChildren(...entries.map(historyRow));
    $("history-empty").hidden = entries.length > 0;
    for (const [key, id] of Object.entries(HISTORY_FILTER_INPUTS)) markInvalid($(id), H.errorField === key);
    if (H.error) {
      setHistoryEmpty("Could not load the history", H.error);
    } else if (historyFiltered()) {
      setHistoryEmpty("No attempts match these filters", "Try another outcome, or clear the filters.");
    } else {
      setHistoryEmpty("No attempts recorded yet",
        "Workers run with ", h("code", { text: "history=gw.History()" }),
        " record every finished attempt here.");
    }
    const page = H.cursors.length + 1;
    $("history-page-info").textContent = entries.length
      ? `Page ${page} · ${plural(entries.length, "attempt")}${H.hasMore ? " · older ones available" : ""}`
      : (page > 1 ? `Page ${page}` : "No rows");
    $("history-count").textContent = entries.length ? `newest first${page > 1 ? ` · page ${page}` : ""}` : "";
    $("history-newer").disabled = H.cursors.length === 0;
    $("history-older").disabled = !H.hasMore || H.nextBeforeId === null;
    // An open drawer stays open when its row leaves the page (newer attempts came in).
    const shown = H.detailId === null ? undefined : entries.find((e) => e.id === H.detailId);
    if (shown) {
      H.detailEntry = shown;
      renderHistoryDetail(shown);
    }
  }

  function historyRow(entry) {
    const H = S.history;
    const lastTry = entry.attempt >= entry.max_attempts;
    const wait = entry.queue_wait;
    let detail;
    if (entry.error) {
      detail = h("td", { class: "cell-error", title: entry.error }, firstLine(entry.error));
    } else if (entry.result !== null && entry.result !== undefined) {
      detail = h("td", { class: "cell-result", title: preview(entry.result, 1000) }, preview(entry.result));
    } else {
      detail = h("td", null, none());
    }
    return h("tr", {
      "data-testid": `history-row-${entry.id}`,
      "data-history-id": entry.id,
      "data-outcome": entry.outcome,
      class: H.detailId === entry.id ? "is-active" : "",
      tabindex: "0",
      "aria-label": `Attempt ${entry.attempt} of job ${entry.job_id}, ${entry.task_identifier}, ${OUTCOME_LABELS[entry.outcome] || entry.outcome}`,
    },
    h("td", { class: "cell-id", text: `#${entry.job_id}` }),
    h("td", { class: "cell-task", text: entry.task_identifier }),
    h("td", { class: "cell-mono cell-truncate", title: entry.queue_name || "" }, entry.queue_name || none()),
    h("td", null, outcomeBadge(entry.outcome, `history-outcome-${entry.id}`)),
    h("td", { class: `col-num ${lastTry && entry.outcome !== "completed" ? "attempts-exhausted" : ""}`, text: `${entry.attempt} / ${entry.max_attempts}` }),
    h("td", null, timeCell(entry.finished_at)),
    h("td", { class: "col-num", "data-testid": `history-duration-${entry.id}`, title: `${entry.duration} s`, text: fmtDuration(entry.duration) }),
    h("td", { class: "col-num", title: wait === null || wait === undefined ? "no run_at recorded" : `${wait} s` },
      wait === null || wait === undefined ? none() : fmtDuration(wait)),
    h("td", { class: "cell-mono cell-truncate", title: entry.worker_id, text: entry.worker_id }),
    detail);
  }

  function syncHistoryInputs() {
    const f = S.history.filters;
    $("history-outcome").value = f.outcome;
    for (const [key, id] of Object.entries(HISTORY_FILTER_INPUTS)) $(id).value = f[key];
    $("history-limit").value = String(S.history.limit);
  }

  /** Merge filter changes, back to the newest page, reload. */
  function setHistoryFilter(changes, scrollTo = false) {
    const f = S.history.filters;
    let changed = false;
    for (const [key, value] of Object.entries(changes)) {
      if (f[key] !== value) {
        f[key] = value;
        changed = true;
      }
    }
    syncHistoryInputs();
    if (scrollTo) $("history").scrollIntoView({ behavior: "smooth", block: "start" });
    if (!changed) return;
    S.history.cursors = [];
    reloadHistory();
  }

  // -- the attempt drawer
  const HISTORY_DETAIL_FIELDS = [
    "id", "job_id", "task_identifier", "queue_name", "outcome", "attempt", "max_attempts",
    "worker_id", "run_at", "started_at", "finished_at", "duration", "queue_wait",
  ];
  const HISTORY_TIME_FIELDS = new Set(["run_at", "started_at", "finished_at"]);

  function openHistoryDetail(id, returnFocus) {
    const entry = S.history.entries.find((e) => e.id === id);
    if (!entry) return;
    closeDetail(); // one drawer at a time
    S.history.detailId = id;
    S.history.detailEntry = entry;
    S.history.detailReturnFocus = returnFocus || document.activeElement;
    renderHistoryDetail(entry);
    $("history-detail").hidden = false;
    markActiveHistoryRow();
    $("history-detail").focus();
  }

  function closeHistoryDetail({ restoreFocus = true } = {}) {
    const H = S.history;
    if (H.detailId === null) return;
    H.detailId = null;
    H.detailEntry = null;
    $("history-detail").hidden = true;
    markActiveHistoryRow();
    const back = H.detailReturnFocus;
    H.detailReturnFocus = null;
    if (restoreFocus && back && back.isConnected && typeof back.focus === "function") back.focus();
  }

  function markActiveHistoryRow() {
    for (const tr of $("history-tbody").rows) {
      tr.classList.toggle("is-active", Number(tr.dataset.historyId) === S.history.detailId);
    }
  }

  function historyDetailValue(field, entry) {
    const value = entry[field];
    if (field === "outcome") return outcomeBadge(value, "history-detail-outcome");
    if (HISTORY_TIME_FIELDS.has(field)) {
      if (!value) return none("null");
      return h("span", { title: value }, fmtAbs(value), h("span", { class: "rel", text: fmtRel(value) }));
    }
    if (field === "duration" || field === "queue_wait") {
      if (value === null || value === undefined) return none("null");
      return h("span", { title: `${value} s` }, fmtDuration(value));
    }
    if (value === null || value === undefined) return none("null");
    if (field === "task_identifier" || field === "queue_name" || field === "worker_id") return h("code", { text: value });
    return String(value);
  }

  function fillBlock(id, value, emptyText) {
    const block = $(id);
    const missing = value === null || value === undefined;
    block.textContent = missing ? emptyText : (typeof value === "string" && id.endsWith("error") ? value : fmtJson(value));
    block.classList.toggle("is-empty", missing);
  }

  function renderHistoryDetail(entry) {
    $("history-detail-title").textContent = `Attempt #${entry.id}`;
    $("history-detail-sub").replaceChildren(
      outcomeBadge(entry.outcome),
      h("code", { text: entry.task_identifier }),
      h("span", { class: "muted small", text: `job #${entry.job_id} · attempt ${entry.attempt} of ${entry.max_attempts}` }));
    $("history-detail-fields").replaceChildren(...HISTORY_DETAIL_FIELDS.flatMap((field) => [
      h("dt", { text: field }),
      h("dd", { "data-testid": `history-field-${field}` }, historyDetailValue(field, entry)),
    ]));
    fillBlock("history-detail-result", entry.result,
      entry.outcome === "completed" ? "No result recorded (the handler returned nothing, or History(results=False))." : "No result (the attempt did not complete).");
    fillBlock("history-detail-error", entry.error, "No error recorded.");
    $("history-detail-error").classList.toggle("code-error", Boolean(entry.error));
    fillBlock("history-detail-payload", entry.payload, "No payload recorded (History(payloads=True) keeps it).");
  }

  function initHistory() {
    $("history-filters").addEventListener("submit", (e) => e.preventDefault());
    $("history-outcome").addEventListener("change", (e) => setHistoryFilter({ outcome: e.target.value }));
    for (const [key, id] of Object.entries(HISTORY_FILTER_INPUTS)) {
      const input = $(id);
      const apply = debounce(() => setHistoryFilter({ [key]: input.value.trim() }), SEARCH_DEBOUNCE_MS);
      input.addEventListener("input", apply);
      input.addEventListener("change", apply.flush);
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          apply.flush();
        }
      });
    }
    $("history-clear").addEventListener("click", () => setHistoryFilter({ outcome: "", task: "", queue: "", job_id: "" }));
    $("history-limit").addEventListener("change", (e) => {
      const limit = Number(e.target.value);
      S.history.limit = HISTORY_LIMITS.includes(limit) ? limit : 50;
      S.history.cursors = [];
      reloadHistory();
    });
    $("history-older").addEventListener("click", () => {
      const H = S.history;
      if (!H.hasMore || H.nextBeforeId === null) return;
      H.cursors.push(H.nextBeforeId);
      reloadHistory();
    });
    $("history-newer").addEventListener("click", () => {
      S.history.cursors.pop();
      reloadHistory();
    });
    const tbody = $("history-tbody");
    tbody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-history-id]");
      if (!tr) return;
      const sel = window.getSelection();
      if (sel && sel.toString()) return; // the user is selecting text
      openHistoryDetail(Number(tr.dataset.historyId), tr);
    });
    tbody.addEventListener("keydown", (event) => {
      const tr = event.target.closest("tr[data-history-id]");
      if (!tr || event.target !== tr) return;
      if (event.key === "Enter") {
        event.preventDefault();
        openHistoryDetail(Number(tr.dataset.historyId), tr);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = event.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) next.focus();
      }
    });
    $("history-detail-close").addEventListener("click", () => closeHistoryDetail());
    $("history-detail-job").addEventListener("click", () => {
      const entry = S.history.detailEntry;
      if (!entry) return;
      const back = S.history.detailReturnFocus;
      closeHistoryDetail({ restoreFocus: false });
      openDetail(entry.job_id, back);
    });
    $("history-detail-attempts").addEventListener("click", () => {
      const entry = S.history.detailEntry;
      if (!entry) return;
      closeHistoryDetail({ restoreFocus: false });
      setHistoryFilter({ outcome: "", task: "", queue: "", job_id: String(entry.job_id) }, true);
    });
    $("detail-history").addEventListener("click", () => {
      const id = S.detailId;
      if (id === null) return;
      closeDetail();
      setHistoryFilter({ outcome: "", task: "", queue: "", job_id: String(id) }, true);
    });
  }

  // ------------------------------------------------------------------ charts (inline SVG, no library)
  const SVG_NS = "http://www.w3.org/2000/svg";
  const CHART_RANGES = ["15m", "1h", "6h", "24h", "7d"];
  const CHART_RANGE_WORDS = { "15m": "15 minutes", "1h": "hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days" };
  const CHART_REFRESH_MS = 10000;
  const CHART_MAX_REFRESH_MS = 300000;
  const CHART_TOP_TASKS = 6;
  const CHART_HEIGHT = 200;
  const CHART_KEY = "gw-admin-charts";
  const PERCENTILES = [
    { key: "p50", name: "p50", cls: "line-p50" },
    { key: "p90", name: "p90", cls: "line-p90" },
    { key: "p99", name: "p99", cls: "line-p99" },
  ];
  const BACKLOG_LINES = [
    { key: "ready", name: "ready", cls: "line-ready" },
    { key: "scheduled", name: "scheduled", cls: "line-scheduled" },
    { key: "running", name: "running", cls: "line-running" },
    { key: "failed", name: "failed", cls: "line-failed" },
  ];
  const TIME_STEPS = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800,
  ].map((s) => s * 1000);

  /** createElementNS with attributes and text children only. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      el.setAttribute(name, typeof value === "number" ? String(Math.round(value * 100) / 100) : String(value));
    }
    appendChildren(el, children);
    return el;
  }

  /** A rounded-up axis maximum and its ticks (integers only for counts). */
  function niceScale(max, integer) {
    if (!(max > 0)) return { max: 1, ticks: [0, 1] };
    const raw = max / 4;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const steps = integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    let step = steps.find((s) => norm <= s) * mag;
    if (integer) step = Math.max(1, Math.round(step));
    const top = Math.ceil(max / step - 1e-9) * step;
    const ticks = [];
    for (let i = 0; i * step <= top + step / 2; i += 1) ticks.push(Number((i * step).toPrecision(12)));
    return { max: top, ticks };
  }

  function timeTicks(t0, t1) {
    const span = t1 - t0;
    const step = TIME_STEPS.find((s) => span / s <= 6) || Math.ceil(span / 6 / 86400000) * 86400000;
    const offset = -new Date(t0).getTimezoneOffset() * 60000; // local = UTC + offset
    const ticks = [];
    for (let t = Math.ceil((t0 + offset) / step) * step - offset; t <= t1; t += step) ticks.push(t);
    return { ticks, step };
  }

  function fmtTick(t, span, step) {
    const d = new Date(t);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (span <= 36 * 3600000) return step < 60000 ? `${hm}:${pad(d.getSeconds())}` : hm;
    const day = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return step < 86400000 ? `${day} ${hm}` : day;
  }

  function fmtBucketTime(t, step) {
    const d = new Date(t);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${step < 60000 ? `:${pad(d.getSeconds())}` : ""}`;
    return step >= 86400000 ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
      : `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  /** The axes and grid of one chart, sized to its box (1 SVG unit = 1 CSS pixel). */
  function chartFrame(box, model, { yMax, ticks, yFormat, label }) {
    const width = Math.max(300, Math.floor(box.clientWidth || 560));
    const height = CHART_HEIGHT;
    const m = { l: 54, r: 10, t: 10, b: 24 };
    const { t0, t1 } = model;
    const x = (t) => m.l + ((t - t0) / (t1 - t0)) * (width - m.l - m.r);
    const y = (v) => m.t + (1 - v / yMax) * (height - m.t - m.b);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart-svg",
      role: "img",
      "aria-label": label,
      "data-width": width,
    });
    const grid = svg("g", { class: "grid" });
    for (const v of ticks) {
      grid.append(
        svg("line", { x1: m.l, x2: width - m.r, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "gridline" }),
        svg("text", { x: m.l - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, yFormat(v)));
    }
    const { ticks: times, step } = timeTicks(t0, t1);
    for (const t of times) {
      grid.append(
        svg("line", { x1: x(t), x2: x(t), y1: height - m.b, y2: height - m.b + 4, class: "axis" }),
        svg("text", { x: x(t), y: height - 6, class: "tick", "text-anchor": "middle" }, fmtTick(t, t1 - t0, step)));
    }
    root.append(grid);
    return { root, x, y, width, height, m };
  }

  function emptyNote(frame, text) {
    return svg("text", {
      x: (frame.m.l + frame.width - frame.m.r) / 2,
      y: (frame.m.t + frame.height - frame.m.b) / 2,
      class: "chart-empty",
      "text-anchor": "middle",
      "data-testid": "chart-empty",
    }, text);
  }

  /** Invisible full-height columns whose <title> is the tooltip of a bucket. */
  function hoverColumns(frame, columns) {
    const layer = svg("g", { class: "hover" });
    for (const { x0, x1, lines } of columns) {
      layer.append(svg("rect", {
        x: x0, width: Math.max(1, x1 - x0), y: frame.m.t, height: frame.height - frame.m.t - frame.m.b, class: "hit",
      }, svg("title", null, lines.join("\n"))));
    }
    return layer;
  }

  function renderLegend(id, items) {
    $(id).replaceChildren(...items.map((item) => h("li", {
      class: "legend-item",
      "data-testid": "legend-item",
      "data-name": item.name,
      title: item.title || "",
    },
    h("span", { class: `swatch ${item.cls}`, "aria-hidden": "true" }),
    h("span", { class: "legend-name", text: item.name }),
    item.value !== undefined ? h("span", { class: "legend-value", text: item.value }) : null)));
  }

  const sum = (values) => values.reduce((a, b) => a + b, 0);

  /** The stats reshaped for drawing: times in ms, the busiest tasks and "other". */
  function chartModel(data) {
    const step = data.bucket * 1000;
    const buckets = (data.buckets || []).map((b) => ({ ...b, t: Date.parse(b.start) }));
    const tasks = (data.tasks || []).slice(0, CHART_TOP_TASKS);
    const series = tasks.map((task, i) => ({
      name: task.task_identifier,
      cls: `series-${i}`,
      total: task.completed.map((c, j) => c + task.failed[j] + task.other[j]),
      failed: task.failed,
    }));
    const rest = Math.max(0, (data.task_count || 0) - tasks.length);
    if (rest > 0) {
      series.push({
        name: `other (${plural(rest, "task")})`,
        cls: "series-other",
        total: buckets.map((b, j) => b.completed + b.failed + b.other - sum(series.map((s) => s.total[j]))),
        failed: buckets.map((b, j) => b.failed - sum(series.map((s) => s.failed[j]))),
      });
    }
    return {
      t0: Date.parse(data.since),
      t1: Date.parse(data.until),
      step,
      buckets,
      series,
      backlog: (data.backlog || []).map((s) => ({ ...s, t: Date.parse(s.sampled_at) })),
      totals: {
        completed: sum(buckets.map((b) => b.completed)),
        failed: sum(buckets.map((b) => b.failed)),
        other: sum(buckets.map((b) => b.other)),
      },
    };
  }

  function drawStacked(boxId, legendId, model, key, label, emptyText) {
    const box = $(boxId);
    const series = model.series.filter((s) => s[key].some((v) => v > 0));
    const stacks = model.buckets.map((_, j) => sum(series.map((s) => s[key][j])));
    const scale = niceScale(Math.max(0, ...stacks), true);
    const total = sum(stacks);
    const frame = chartFrame(box, model, {
      yMax: scale.max, ticks: scale.ticks, yFormat: fmtCount, label: `${label}: ${fmtCount(total)} in the range`,
    });
    const layer = svg("g", { class: "bars" });
    const columns = [];
    let bars = 0;
    model.buckets.forEach((bucket, j) => {
      const x0 = frame.x(bucket.t);
      const x1 = frame.x(bucket.t + model.step);
      const width = Math.max(1, (x1 - x0) * 0.8);
      let below = 0;
      const lines = [fmtBucketTime(bucket.t, model.step)];
      for (const s of series) {
        const value = s[key][j];
        if (!value) continue;
        layer.append(svg("rect", {
          x: x0 + (x1 - x0 - width) / 2,
          y: frame.y(below + value),
          width,
          height: Math.max(0.5, frame.y(below) - frame.y(below + value)),
          class: `bar ${s.cls}`,
          "data-task": s.name,
        }));
        below += value;
        bars += 1;
        lines.push(`${s.name}: ${fmtCount(value)}`);
      }
      if (below > 0) columns.push({ x0, x1, lines: [...lines, `total: ${fmtCount(below)}`] });
    });
    frame.root.append(layer, hoverColumns(frame, columns));
    frame.root.setAttribute("data-bars", String(bars));
    if (!bars) frame.root.append(emptyNote(frame, emptyText));
    box.replaceChildren(frame.root);
    renderLegend(legendId, series.map((s) => ({ cls: s.cls, name: s.name, value: fmtCount(sum(s[key])) })));
  }

  /** "M x y L x y …" per run of points without a gap; lone points become dots. */
  function pathOf(points) {
    const runs = [];
    let run = [];
    for (const p of points) {
      if (p === null) {
        if (run.length) runs.push(run);
        run = [];
      } else run.push(p);
    }
    if (run.length) runs.push(run);
    const d = runs.filter((r) => r.length > 1)
      .map((r) => r.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)} ${py.toFixed(1)}`).join(" "))
      .join(" ");
    return { d, count: sum(runs.map((r) => r.length)), lone: runs.filter((r) => r.length === 1).map((r) => r[0]) };
  }

  /** Lines from rows: ``at(row)`` is its time, ``value(row, line)`` a number or null. */
  function drawLines(boxId, legendId, model, { rows, at, value, lines, yFormat, label, emptyText, breakAfter, width }) {
    const box = $(boxId);
    const values = lines.map((line) => rows.map((row) => value(row, line)));
    const present = values.flat().filter((v) => typeof v === "number");
    const scale = niceScale(Math.max(0, ...present), yFormat === fmtCount);
    const frame = chartFrame(box, model, { yMax: scale.max, ticks: scale.ticks, yFormat, label });
    let points = 0;
    lines.forEach((line, i) => {
      // Empty buckets are skipped, not drawn as zero; a gap longer than
      // breakAfter (nothing ran, or no sampler) breaks the line.
      const coords = [];
      let last = null;
      rows.forEach((row, j) => {
        const v = values[i][j];
        if (typeof v !== "number") return;
        if (last !== null && at(row) - last > breakAfter) coords.push(null);
        coords.push([frame.x(at(row)), frame.y(v)]);
        last = at(row);
      });
      const { d, count, lone } = pathOf(coords);
      if (d) {
        frame.root.append(svg("path", {
          d, class: `line ${line.cls}`, "data-points": count, "data-line": line.key,
        }));
      }
      for (const [px, py] of lone) frame.root.append(svg("circle", { cx: px, cy: py, r: 2.5, class: `dot ${line.cls}` }));
      points += count;
    });
    const columns = rows.map((row, j) => {
      const center = frame.x(at(row));
      const texts = lines.map((line, i) => `${line.name}: ${typeof values[i][j] === "number" ? yFormat(values[i][j]) : "–"}`);
      return {
        x0: center - width / 2,
        x1: center + width / 2,
        lines: [fmtBucketTime(at(row), model.step), ...texts],
        has: lines.some((_, i) => typeof values[i][j] === "number"),
      };
    }).filter((c) => c.has);
    frame.root.append(hoverColumns(frame, columns));
    frame.root.setAttribute("data-points", String(points));
    if (!points) frame.root.append(emptyNote(frame, emptyText));
    box.replaceChildren(frame.root);
    renderLegend(legendId, lines.map((line, i) => {
      const last = [...values[i]].reverse().find((v) => typeof v === "number");
      return { cls: line.cls, name: line.name, value: last === undefined ? "–" : yFormat(last), title: "latest value" };
    }));
  }

  function chartSummary(model) {
    const C = S.charts;
    const { completed, failed, other } = model.totals;
    const total = completed + failed + other;
    const scope = [C.task ? `task ${C.task}` : "", C.queue ? `queue ${C.queue}` : ""].filter(Boolean).join(", ");
    const parts = [`${fmtCount(total)} ${total === 1 ? "attempt" : "attempts"} in the last ${CHART_RANGE_WORDS[C.range] || C.range}${scope ? ` (${scope})` : ""}`];
    if (total) {
      parts.push(`${fmtCount(completed)} completed`);
      parts.push(`${fmtCount(failed)} failed (${fmtNumber((failed / total) * 100)} %)`);
      if (other) parts.push(`${fmtCount(other)} other`);
    }
    parts.push(`buckets of ${fmtDuration(model.step / 1000)}`);
    if (C.updated) parts.push(`updated ${fmtClock(C.updated)}`);
    let text = parts.join(" · ");
    if (!total && !model.backlog.length) {
      text += ". Nothing recorded: gw workers record attempts and backlog samples when run with history=gw.History().";
    }
    return text;
  }

  function renderCharts() {
    const C = S.charts;
    $("chart-error").hidden = !C.error;
    $("chart-error-text").textContent = C.error || "";
    markInvalid($("chart-task"), C.errorField === "task");
    markInvalid($("chart-queue"), C.errorField === "queue");
    for (const button of document.querySelectorAll("#chart-range [data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === C.range));
    }
    const data = C.error ? null : C.data;
    $("chart-grid").hidden = !data;
    if (!data) {
      $("chart-summary").textContent = C.error ? "" : "Loading…";
      return;
    }
    const model = chartModel(data);
    $("chart-summary").textContent = chartSummary(model);
    $("chart-throughput-sub").textContent = `finished attempts per ${fmtDuration(model.step / 1000)}, by task`;
    drawStacked("chart-throughput", "legend-throughput", model, "total", "Throughput", "No attempts finished in this range");
    drawStacked("chart-failures", "legend-failures", model, "failed", "Failures", "No failures in this range");
    const bucketWidth = (box) => Math.max(2, (Math.max(300, box.clientWidth || 560) - 64) * (model.step / (model.t1 - model.t0)));
    const percentiles = (pick) => ({
      rows: model.buckets,
      at: (b) => b.t + model.step / 2,
      value: (b, line) => (pick(b) ? pick(b)[line.key] : null),
      lines: PERCENTILES,
      yFormat: fmtDuration,
      emptyText: "No attempts finished in this range",
      breakAfter: 3.5 * model.step,
      width: bucketWidth($("chart-duration")),
    });
    drawLines("chart-duration", "legend-duration", model, { ...percentiles((b) => b.duration), label: "Run time percentiles" });
    drawLines("chart-wait", "legend-wait", model, { ...percentiles((b) => b.queue_wait), label: "Queue wait percentiles" });
    drawLines("chart-backlog", "legend-backlog", model, {
      rows: model.backlog,
      at: (s) => s.t,
      value: (s, line) => s[line.key],
      lines: BACKLOG_LINES,
      yFormat: fmtCount,
      label: "Backlog by state",
      emptyText: "No backlog samples in this range (gw workers with gw.History take one a minute)",
      breakAfter: Math.max(2.5 * model.step, 150000),
      width: Math.max(4, bucketWidth($("chart-backlog"))),
    });
  }

  async function loadCharts() {
    const C = S.charts;
    if (!S.authed) return;
    const seq = ++C.seq;
    const q = new URLSearchParams({ range: C.range });
    if (C.task) q.set("task", C.task);
    if (C.queue) q.set("queue", C.queue);
    C.loading = true;
    try {
      const data = await get(`/api/history/stats?${q}`);
      if (seq !== C.seq) return;
      C.data = data;
      C.error = null;
      C.errorField = null;
      C.updated = new Date();
    } catch (err) {
      if (seq !== C.seq || (err instanceof ApiError && err.status === 401)) return;
      C.error = err && err.message ? err.message : String(err);
      C.errorField = err && err.field ? err.field : null;
    } finally {
      if (seq === C.seq) C.loading = false;
    }
    renderCharts();
  }

  /** 10 s, longer for long ranges: a week in 2-hour buckets need not be counted every 10 s. */
  function chartInterval() {
    const bucket = S.charts.data ? S.charts.data.bucket * 1000 : 0;
    return Math.min(Math.max(CHART_REFRESH_MS, bucket / 4), CHART_MAX_REFRESH_MS);
  }

  function chartTick() {
    const C = S.charts;
    if (!C.live || !S.authed || document.hidden || !C.onScreen || C.loading) return;
    // A little early is fine: timers drift, and a skipped tick would double the wait.
    if (C.updated && Date.now() - C.updated.getTime() < chartInterval() - 1000) return;
    loadCharts();
  }

  function saveChartSettings() {
    try {
      localStorage.setItem(CHART_KEY, JSON.stringify({ range: S.charts.range, live: S.charts.live }));
    } catch {
      /* ignore */
    }
  }

  function initCharts() {
    const C = S.charts;
    try {
      const saved = JSON.parse(localStorage.getItem(CHART_KEY) || "{}");
      if (CHART_RANGES.includes(saved.range)) C.range = saved.range;
      if (typeof saved.live === "boolean") C.live = saved.live;
    } catch {
      /* ignore */
    }
    const live = $("chart-live");
    live.checked = C.live;
    live.setAttribute("aria-checked", String(C.live));
    live.addEventListener("change", () => {
      C.live = live.checked;
      live.setAttribute("aria-checked", String(C.live));
      saveChartSettings();
      if (C.live) chartTick();
    });
    for (const button of document.querySelectorAll("#chart-range [data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === C.range));
      button.addEventListener("click", () => {
        if (C.range === button.dataset.range) return;
        C.range = button.dataset.range;
        saveChartSettings();
        renderCharts();
        loadCharts();
      });
    }
    for (const [id, key] of [["chart-task", "task"], ["chart-queue", "queue"]]) {
      const input = $(id);
      const apply = debounce(() => {
        const value = input.value.trim();
        if (C[key] === value) return;
        C[key] = value;
        loadCharts();
      }, SEARCH_DEBOUNCE_MS);
      input.addEventListener("input", apply);
      input.addEventListener("change", apply.flush);
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          apply.flush();
        }
      });
    }
    // Refresh only while the charts are on screen and the tab is visible.
    if (typeof IntersectionObserver === "function") {
      new IntersectionObserver((entries) => {
        const was = C.onScreen;
        C.onScreen = entries.some((entry) => entry.isIntersecting);
        if (C.onScreen && !was) chartTick();
      }).observe($("activity"));
    } else {
      C.onScreen = true;
    }
    if (typeof ResizeObserver === "function") {
      let width = 0;
      const redraw = debounce(() => renderCharts(), 150);
      new ResizeObserver((entries) => {
        const now = Math.round(entries[0].contentRect.width);
        if (now !== width) {
          width = now;
          if (C.data) redraw();
        }
      }).observe($("chart-grid"));
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) chartTick();
    });
    setInterval(chartTick, CHART_REFRESH_MS);
  }

  // ------------------------------------------------------------------ filters & URL
  function readFiltersFromUrl() {
    const q = new URLSearchParams(window.location.search);
    const state = q.get("state");
    if (state && ["all", ...STATES].includes(state)) S.filters.state = state;
    S.filters.identifier = q.get("identifier") || "";
    S.filters.queue = q.get("queue") || "";
    S.filters.search = q.get("search") || "";
    const limit = Number(q.get("limit"));
    if (LIMITS.includes(limit)) S.limit = limit;
    const offset = Number(q.get("offset"));
    if (Number.isInteger(offset) && offset > 0) S.offset = offset;
  }

  function writeFiltersToUrl() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(S.filters)) {
      if (v && !(k === "state" && v === "all")) q.set(k, v);
    }
    if (S.limit !== 50) q.set("limit", String(S.limit));
    if (S.offset > 0) q.set("offset", String(S.offset));
    const qs = q.toString();
    const url = `${window.location.pathname}${qs ? `?${qs}` : ""}${window.location.hash}`;
    try {
      window.history.replaceState(null, "", url);
    } catch {
      /* ignore */
    }
  }

  function syncFilterInputs() {
    $("filter-state").value = S.filters.state;
    $("filter-identifier").value = S.filters.identifier;
    $("filter-queue").value = S.filters.queue;
    $("filter-search").value = S.filters.search;
    $("page-limit").value = String(S.limit);
    for (const card of document.querySelectorAll(".stat-card")) {
      card.setAttribute("aria-pressed", String(card.dataset.state === S.filters.state));
    }
  }

  /** Merge filter changes, reset paging, reload. */
  function setFilter(changes, scrollToJobs = false) {
    let changed = false;
    for (const [k, v] of Object.entries(changes)) {
      if (S.filters[k] !== v) {
        S.filters[k] = v;
        changed = true;
      }
    }
    syncFilterInputs();
    if (scrollToJobs) $("jobs").scrollIntoView({ behavior: "smooth", block: "start" });
    if (!changed) return;
    S.offset = 0;
    writeFiltersToUrl();
    reloadJobs();
  }

  function reloadJobs() {
    loadJobs().catch((err) => toastError("Could not load jobs", err));
  }

  function initFilters() {
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("filter-state").addEventListener("change", (e) => setFilter({ state: e.target.value }));
    for (const card of document.querySelectorAll(".stat-card")) {
      card.addEventListener("click", () => setFilter({ state: card.dataset.state }));
    }
    const textFilters = [["filter-identifier", "identifier"], ["filter-queue", "queue"], ["filter-search", "search"]];
    for (const [id, key] of textFilters) {
      const input = $(id);
      const apply = debounce(() => setFilter({ [key]: input.value.trim() }), SEARCH_DEBOUNCE_MS);
      input.addEventListener("input", apply);
      input.addEventListener("change", apply.flush);
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          apply.flush();
        }
      });
    }
    $("filter-clear").addEventListener("click", () => {
      setFilter({ state: "all", identifier: "", queue: "", search: "" });
    });
    $("page-limit").addEventListener("change", (e) => {
      const limit = Number(e.target.value);
      S.limit = LIMITS.includes(limit) ? limit : 50;
      S.offset = 0;
      writeFiltersToUrl();
      reloadJobs();
    });
    $("page-prev").addEventListener("click", () => {
      S.offset = Math.max(0, S.offset - S.limit);
      writeFiltersToUrl();
      reloadJobs();
    });
    $("page-next").addEventListener("click", () => {
      if (!S.hasMore) return;
      S.offset += S.limit;
      writeFiltersToUrl();
      reloadJobs();
    });
  }

  // ------------------------------------------------------------------ jobs
  async function loadJobs() {
    const seq = ++S.jobsSeq;
    const q = new URLSearchParams();
    q.set("state", S.filters.state);
    if (S.filters.identifier) q.set("identifier", S.filters.identifier);
    if (S.filters.queue) q.set("queue", S.filters.queue);
    if (S.filters.search) q.set("search", S.filters.search);
    q.set("limit", String(S.limit));
    q.set("offset", String(S.offset));
    const wrap = $("jobs");
    wrap.classList.add("is-loading");
    try {
      const data = await get(`/api/jobs?${q}`);
      if (seq !== S.jobsSeq) return; // a newer request superseded this one
      const jobs = Array.isArray(data.jobs) ? data.jobs : [];
      if (jobs.length === 0 && S.offset > 0) {
        // The page emptied (jobs completed/removed): step back.
        S.offset = Math.max(0, S.offset - S.limit);
        writeFiltersToUrl();
        await loadJobs();
        return;
      }
      S.jobs = jobs;
      S.hasMore = Boolean(data.has_more);
      setJobsEmptyText("No jobs match these filters", "Try another state, or clear the filters.");
      renderJobs();
    } catch (err) {
      if (seq === S.jobsSeq && S.jobs.length === 0) {
        setJobsEmptyText("Could not load jobs", err.message);
        $("job-empty").hidden = false;
      }
      throw err;
    } finally {
      if (seq === S.jobsSeq) wrap.classList.remove("is-loading");
    }
  }

  function setJobsEmptyText(title, text) {
    $("job-empty-title").textContent = title;
    $("job-empty-text").textContent = text;
  }

  function renderJobs() {
    const visible = new Set(S.jobs.map((j) => j.id));
    for (const id of [...S.selected]) if (!visible.has(id)) S.selected.delete(id);
    $("job-tbody").replaceChildren(...S.jobs.map(jobRow));
    $("job-empty").hidden = S.jobs.length > 0;
    renderPager();
    renderSelection();
    if (S.detailId !== null) {
      const job = S.jobs.find((j) => j.id === S.detailId);
      if (job) renderDetail(job);
    }
  }

  function jobRow(job) {
    const selected = S.selected.has(job.id);
    const exhausted = job.attempts >= job.max_attempts;
    const tr = h("tr", {
      "data-testid": `job-row-${job.id}`,
      "data-job-id": job.id,
      "data-state": job.state,
      class: [selected ? "is-selected" : "", S.detailId === job.id ? "is-active" : ""].join(" ").trim(),
      tabindex: "0",
      "aria-label": `Job ${job.id}, ${job.task_identifier}, ${job.state}`,
    },
    h("td", { class: "col-select", "data-write": true }, h("input", {
      type: "checkbox",
      "data-testid": `job-select-${job.id}`,
      id: `job-select-${job.id}`,
      "aria-label": `Select job ${job.id}`,
      checked: selected,
      disabled: S.readOnly,
    })),
    h("td", { class: "cell-id", text: job.id }),
    h("td", { class: "cell-task" }, job.task_identifier,
      Array.isArray(job.flags) && job.flags.length
        ? h("span", { class: "flags" }, job.flags.map((f) => h("span", { class: "chip", text: f })))
        : null),
    h("td", { class: "cell-mono cell-truncate", title: job.queue_name || "" }, job.queue_name || none()),
    h("td", null, stateBadge(job.state, `job-state-${job.id}`)),
    h("td", null, timeCell(job.run_at)),
    h("td", { class: `col-num ${exhausted ? "attempts-exhausted" : ""}`, text: `${job.attempts} / ${job.max_attempts}` }),
    h("td", { class: "col-num", text: job.priority }),
    h("td", { class: "cell-mono cell-truncate", title: job.key || "" }, job.key || none()),
    h("td", { class: "cell-error", title: job.last_error || "" }, job.last_error ? firstLine(job.last_error) : none()));
    return tr;
  }

  function firstLine(text) {
    const line = String(text).split("\n", 1)[0];
    return line.length > 200 ? `${line.slice(0, 200)}…` : line;
  }

  function renderPager() {
    const first = S.jobs.length ? S.offset + 1 : 0;
    const last = S.offset + S.jobs.length;
    $("page-info").textContent = S.jobs.length
      ? `Showing ${first.toLocaleString()}–${last.toLocaleString()}${S.hasMore ? " · more available" : ""}`
      : "No rows";
    $("page-prev").disabled = S.offset <= 0;
    $("page-next").disabled = !S.hasMore;
  }

  function initJobTable() {
    const tbody = $("job-tbody");
    tbody.addEventListener("change", (event) => {
      const box = event.target;
      if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") return;
      const id = Number(box.closest("tr").dataset.jobId);
      if (box.checked) S.selected.add(id);
      else S.selected.delete(id);
      box.closest("tr").classList.toggle("is-selected", box.checked);
      renderSelection();
    });
    tbody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-job-id]");
      if (!tr || event.target.closest(".col-select")) return;
      const sel = window.getSelection();
      if (sel && sel.toString()) return; // the user is selecting text
      openDetail(Number(tr.dataset.jobId), tr);
    });
    tbody.addEventListener("keydown", (event) => {
      const tr = event.target.closest("tr[data-job-id]");
      if (!tr || event.target !== tr) return;
      if (event.key === "Enter") {
        event.preventDefault();
        openDetail(Number(tr.dataset.jobId), tr);
      } else if (event.key === " " && !S.readOnly) {
        event.preventDefault();
        const box = tr.querySelector("input[type=checkbox]");
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change", { bubbles: true }));
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = event.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) next.focus();
      }
    });
    $("select-all").addEventListener("change", (event) => {
      if (event.target.checked) for (const j of S.jobs) S.selected.add(j.id);
      else S.selected.clear();
      for (const tr of tbody.rows) {
        const on = S.selected.has(Number(tr.dataset.jobId));
        tr.classList.toggle("is-selected", on);
        const box = tr.querySelector("input[type=checkbox]");
        if (box) box.checked = on;
      }
      renderSelection();
    });
  }

  function selectedIds() {
    return [...S.selected].sort((a, b) => a - b);
  }

  function renderSelection() {
    const n = S.selected.size;
    const all = $("select-all");
    all.checked = n > 0 && n === S.jobs.length;
    all.indeterminate = n > 0 && n < S.jobs.length;
    $("selection-count").textContent = n ? `${plural(n, "job")} selected` : "No jobs selected";
    $("action-bar").classList.toggle("has-selection", n > 0);
    for (const id of ["action-complete", "action-run-now", "action-fail", "action-cancel", "action-reschedule"]) {
      $(id).disabled = n === 0 || S.readOnly;
    }
  }

  // ------------------------------------------------------------------ detail drawer
  const DETAIL_FIELDS = [
    "id", "task_identifier", "queue_name", "state", "is_available", "priority", "attempts",
    "max_attempts", "run_at", "created_at", "updated_at", "locked_at", "locked_by", "key",
    "revision", "flags",
  ];
  const TIME_FIELDS = new Set(["run_at", "created_at", "updated_at", "locked_at"]);

  function openDetail(id, returnFocus) {
    closeHistoryDetail({ restoreFocus: false }); // one drawer at a time
    S.detailId = id;
    S.detailReturnFocus = returnFocus || document.activeElement;
    const drawer = $("job-detail");
    const cached = S.jobs.find((j) => j.id === id);
    if (cached) renderDetail(cached);
    else {
      $("job-detail-title").textContent = `Job #${id}`;
      $("job-detail-fields").replaceChildren();
    }
    drawer.hidden = false;
    markActiveRow();
    drawer.focus();
    get(`/api/jobs/${encodeURIComponent(id)}`).then((data) => {
      if (S.detailId === id && data.job) renderDetail(data.job);
    }).catch((err) => {
      if (S.detailId !== id) return;
      if (err instanceof ApiError && err.status === 404) {
        toast({ kind: "info", title: `Job #${id} no longer exists`, message: "It was completed or removed." });
        closeDetail();
      } else toastError(`Could not load job #${id}`, err);
    });
  }

  function closeDetail() {
    if (S.detailId === null) return;
    S.detailId = null;
    $("job-detail").hidden = true;
    markActiveRow();
    const back = S.detailReturnFocus;
    S.detailReturnFocus = null;
    if (back && back.isConnected && typeof back.focus === "function") back.focus();
  }

  function markActiveRow() {
    for (const tr of $("job-tbody").rows) {
      tr.classList.toggle("is-active", Number(tr.dataset.jobId) === S.detailId);
    }
  }

  function detailValue(field, job) {
    const value = job[field];
    if (field === "state") return stateBadge(value, "detail-state");
    if (TIME_FIELDS.has(field)) {
      if (!value) return none("null");
      return h("span", { title: value }, fmtAbs(value), h("span", { class: "rel", text: fmtRel(value) }));
    }
    if (field === "flags") {
      return Array.isArray(value) && value.length ? value.map((f) => h("span", { class: "chip", text: f })) : none("[]");
    }
    if (value === null || value === undefined) return none("null");
    if (typeof value === "boolean") return String(value);
    if (typeof value === "object") return h("code", { text: JSON.stringify(value) });
    if (field === "locked_by" || field === "key" || field === "queue_name" || field === "task_identifier") {
      return h("code", { text: value });
    }
    return String(value);
  }

  function renderDetail(job) {
    $("job-detail-title").textContent = `Job #${job.id}`;
    const sub = [stateBadge(job.state), h("code", { text: job.task_identifier })];
    if (job.queue_name) sub.push(h("span", { class: "muted small", text: `in queue ${job.queue_name}` }));
    $("job-detail-sub").replaceChildren(...sub);
    const known = new Set(DETAIL_FIELDS);
    const fields = [...DETAIL_FIELDS, ...Object.keys(job).filter((k) => !known.has(k) && k !== "payload" && k !== "last_error")];
    const dl = $("job-detail-fields");
    dl.replaceChildren(...fields.flatMap((f) => [
      h("dt", { text: f }),
      h("dd", { "data-testid": `detail-field-${f}` }, detailValue(f, job)),
    ]));
    const payload = $("job-detail-payload");
    payload.textContent = fmtJson(job.payload);
    const errorBlock = $("job-detail-error");
    errorBlock.textContent = job.last_error || "No error recorded.";
    errorBlock.classList.toggle("is-empty", !job.last_error);
    errorBlock.classList.toggle("code-error", Boolean(job.last_error));
    $("detail-remove-key").hidden = !job.key;
    const locked = job.state === "locked";
    for (const id of ["detail-complete", "detail-run-now", "detail-fail"]) {
      $(id).disabled = S.readOnly || locked;
      $(id).title = locked ? "Locked jobs are left untouched" : "";
    }
    $("detail-remove-key").dataset.key = job.key || "";
    // Cancelling reaches locked jobs too (a gw worker stops them); failed ones are done.
    const done = job.state === "failed";
    $("detail-cancel").disabled = S.readOnly || done;
    $("detail-cancel").title = done ? "Already failed for good: nothing to cancel" : "";
  }

  function initDetail() {
    $("job-detail-close").addEventListener("click", closeDetail);
    $("detail-complete").addEventListener("click", (e) => doComplete([S.detailId], e.currentTarget));
    $("detail-run-now").addEventListener("click", (e) => doRunNow([S.detailId], e.currentTarget));
    $("detail-fail").addEventListener("click", (e) => doFail([S.detailId], e.currentTarget));
    $("detail-cancel").addEventListener("click", (e) => doCancel([S.detailId], e.currentTarget));
    $("detail-remove-key").addEventListener("click", (e) => {
      removeByKey(e.currentTarget.dataset.key, e.currentTarget);
    });
  }

  // ------------------------------------------------------------------ job actions
  /** Runs one write: confirm first (if asked), mark busy, toast errors. */
  async function write(button, { confirm, errorTitle, run }) {
    if (S.readOnly) {
      toast({ kind: "error", title: "Read-only mode", message: "This admin server does not allow changes." });
      return null;
    }
    if (confirm && !(await confirmAction(confirm))) return null;
    S.busy += 1;
    setBusy(button, true);
    try {
      return await run();
    } catch (err) {
      toastError(errorTitle, err);
      return null;
    } finally {
      S.busy -= 1;
      setBusy(button, false);
    }
  }

  const ACTION_DONE = {
    complete: "Completed",
    "run-now": "Set to run now",
    fail: "Failed",
    reschedule: "Rescheduled",
  };

  async function jobAction(button, action, ids, extra, confirm, verb) {
    const result = await write(button, {
      confirm,
      errorTitle: `Could not ${verb}`,
      run: () => post("/api/jobs/action", { action, ids, ...extra }),
    });
    if (!result) return false;
    const count = typeof result.count === "number" ? result.count : (result.jobs || []).length;
    const skipped = ids.length - count;
    toastOk(`${ACTION_DONE[action] || action}: ${plural(count, "job")}`,
      skipped > 0 ? `${plural(skipped, "job")} left untouched (locked or already gone).` : undefined);
    for (const id of ids) S.selected.delete(id);
    if (action === "complete" && ids.includes(S.detailId)) closeDetail();
    else if (S.detailId !== null && ids.includes(S.detailId)) openDetail(S.detailId, S.detailReturnFocus);
    await refreshAll({ quiet: true });
    return true;
  }

  function doComplete(ids, button) {
    if (!ids.length) return;
    return jobAction(button, "complete", ids, {}, {
      title: `Complete ${plural(ids.length, "job")}?`,
      message: "The jobs are removed from the queue as if they had succeeded. Locked jobs are left untouched.",
      details: idList(ids),
      okLabel: `Complete ${plural(ids.length, "job")}`,
    }, "complete jobs");
  }

  function doRunNow(ids, button) {
    if (!ids.length) return;
    return jobAction(button, "run-now", ids, {}, {
      title: `Run ${plural(ids.length, "job")} now?`,
      message: "run_at is set to now so that workers pick the jobs up immediately.",
      details: idList(ids),
      okLabel: "Run now",
      danger: false,
    }, "run jobs now");
  }

  async function doFail(ids, button) {
    if (!ids.length) return;
    const input = $("action-fail-reason");
    const reason = input.value.trim();
    const ok = await jobAction(button, "fail", ids, reason ? { reason } : {}, {
      title: `Fail ${plural(ids.length, "job")}?`,
      message: `The jobs are marked as permanently failed. Reason: ${reason || "Manually marked as failed from the gw admin UI"}`,
      details: idList(ids),
      okLabel: `Fail ${plural(ids.length, "job")}`,
    }, "fail jobs");
    if (ok) input.value = "";
  }

  /** "held by worker X" / "held by workers X, Y" for the results with this outcome. */
  function workersNote(results, outcome, words) {
    const ids = [...new Set(results.filter((r) => r.outcome === outcome && r.worker_id).map((r) => r.worker_id))];
    if (!ids.length) return "";
    return ` (${words} ${ids.length === 1 ? "worker" : "workers"} ${ids.join(", ")})`;
  }

  /** "2 cancelled, 1 cancelling (on worker W), 1 not cancellable (held by worker X)". */
  function cancelSummary(counts, results) {
    const parts = [];
    if (counts.cancelled) parts.push(`${counts.cancelled} cancelled`);
    if (counts.cancelling) parts.push(`${counts.cancelling} cancelling${workersNote(results, "cancelling", "on")}`);
    if (counts.not_cancellable) {
      parts.push(`${counts.not_cancellable} not cancellable${workersNote(results, "not_cancellable", "held by")}`);
    }
    if (counts.finished) parts.push(`${counts.finished} already failed`);
    if (counts.not_found) parts.push(`${counts.not_found} not found`);
    return parts.join(", ") || "nothing to cancel";
  }

  /** One line per job: what cancelling did to it. */
  function cancelLine(result) {
    const job = S.jobs.find((j) => j.id === result.job_id);
    const label = job ? `#${result.job_id} ${job.task_identifier}` : `#${result.job_id}`;
    const worker = result.worker_id || "a worker";
    const text = {
      cancelled: "cancelled",
      cancelling: `cancelling: ${worker} was asked to stop it`,
      not_cancellable: `not cancellable: held by ${worker}, which is not a gw worker`,
      finished: "not cancelled: it had already failed for good",
      not_found: "not found (completed or removed)",
    }[result.outcome] || result.outcome;
    return `${label}: ${text}`;
  }

  async function doCancel(ids, button) {
    if (!ids.length) return;
    const result = await write(button, {
      confirm: {
        title: `Cancel ${plural(ids.length, "job")}?`,
        message: "Waiting jobs fail for good at once. Jobs a gw worker is running are stopped there " +
          "within about a second. Jobs held by Node or Rust workers are left alone.",
        details: idList(ids),
        okLabel: `Cancel ${plural(ids.length, "job")}`,
        cancelLabel: "Don't cancel",
        input: { label: "Reason (optional)", placeholder: "stored as \"cancelled: <reason>\"" },
      },
      errorTitle: "Could not cancel jobs",
      run: () => {
        const reason = confirmInputValue();
        return post("/api/jobs/cancel", reason ? { ids, reason } : { ids });
      },
    });
    if (!result) return false;
    const results = Array.isArray(result.results) ? result.results : [];
    const counts = result.counts || {};
    const problems = (counts.not_cancellable || 0) + (counts.finished || 0) + (counts.not_found || 0);
    toast({
      kind: problems ? "warning" : "success",
      title: `Cancel: ${plural(ids.length, "job")}`,
      message: cancelSummary(counts, results),
      details: results.map(cancelLine),
      timeout: problems ? 0 : undefined,
    });
    for (const id of ids) S.selected.delete(id);
    if (S.detailId !== null && ids.includes(S.detailId)) openDetail(S.detailId, S.detailReturnFocus);
    await refreshAll({ quiet: true });
    if (counts.cancelling) {
      // The workers stop those jobs within about a second: show where they ended up.
      setTimeout(() => {
        if (!S.authed) return;
        refreshAll({ quiet: true });
        if (S.detailId !== null && ids.includes(S.detailId)) openDetail(S.detailId, S.detailReturnFocus);
      }, CANCEL_FOLLOW_UP_MS);
    }
    return true;
  }

  function readInt(input, label, { min } = {}) {
    const raw = input.value.trim();
    input.removeAttribute("aria-invalid");
    if (raw === "") return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || (min !== undefined && n < min)) {
      input.setAttribute("aria-invalid", "true");
      throw new ApiError(0, "validation",
        `${label} must be a whole number${min !== undefined ? ` ≥ ${min}` : ""}`, input.name || input.id);
    }
    return n;
  }

  function readDateTime(input, label) {
    input.removeAttribute("aria-invalid");
    if (!input.value) return undefined;
    const iso = localInputToIso(input.value);
    if (!iso) {
      input.setAttribute("aria-invalid", "true");
      throw new ApiError(0, "validation", `${label} is not a valid date and time`, input.name || input.id);
    }
    return iso;
  }

  async function doReschedule(ids, button) {
    if (!ids.length) return;
    const fields = {};
    try {
      const runAt = readDateTime($("reschedule-run-at"), "Run at");
      const priority = readInt($("reschedule-priority"), "Priority");
      const attempts = readInt($("reschedule-attempts"), "Attempts", { min: 0 });
      const maxAttempts = readInt($("reschedule-max-attempts"), "Max attempts", { min: 1 });
      if (runAt !== undefined) fields.run_at = runAt;
      if (priority !== undefined) fields.priority = priority;
      if (attempts !== undefined) fields.attempts = attempts;
      if (maxAttempts !== undefined) fields.max_attempts = maxAttempts;
    } catch (err) {
      toastError("Check the reschedule fields", err);
      return;
    }
    if (Object.keys(fields).length === 0) {
      toast({
        kind: "error",
        title: "Nothing to reschedule",
        message: "Fill in at least one of run at, priority, attempts or max attempts.",
      });
      $("reschedule-run-at").focus();
      return;
    }
    const changes = Object.entries(fields).map(([k, v]) => `${k} → ${k === "run_at" ? `${fmtAbs(v)} (${v})` : v}`);
    const ok = await jobAction(button, "reschedule", ids, fields, {
      title: `Reschedule ${plural(ids.length, "job")}?`,
      message: `Changes: ${changes.join(", ")}`,
      details: idList(ids),
      okLabel: "Reschedule",
      danger: false,
    }, "reschedule jobs");
    if (ok) {
      for (const id of ["reschedule-run-at", "reschedule-priority", "reschedule-attempts", "reschedule-max-attempts"]) {
        $(id).value = "";
      }
    }
  }

  async function removeByKey(key, button) {
    key = (key || "").trim();
    if (!key) {
      toast({ kind: "error", title: "Enter a job key", message: "Remove by key needs the job's key.", field: "key" });
      $("remove-key-input").focus();
      return;
    }
    const result = await write(button, {
      confirm: {
        title: "Remove job by key?",
        message: `The job with key "${key}" is deleted (unless it is locked).`,
        okLabel: "Remove job",
      },
      errorTitle: "Could not remove the job",
      run: () => post("/api/jobs/remove-by-key", { key }),
    });
    if (!result) return;
    if (result.job) {
      toastOk(`Removed job #${result.job.id}`, `${result.job.task_identifier} (key ${key})`);
      if (S.detailId === result.job.id) closeDetail();
      $("remove-key-input").value = "";
    } else {
      toast({ kind: "info", title: "No job removed", message: `No job had the key "${key}".` });
    }
    showMaintResult("remove-by-key", result);
    await refreshAll({ quiet: true });
  }

  function initActions() {
    $("action-complete").addEventListener("click", (e) => doComplete(selectedIds(), e.currentTarget));
    $("action-run-now").addEventListener("click", (e) => doRunNow(selectedIds(), e.currentTarget));
    $("action-fail").addEventListener("click", (e) => doFail(selectedIds(), e.currentTarget));
    $("action-cancel").addEventListener("click", (e) => doCancel(selectedIds(), e.currentTarget));
    $("action-reschedule").addEventListener("click", (e) => doReschedule(selectedIds(), e.currentTarget));
    $("action-fail-reason").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && S.selected.size) {
        e.preventDefault();
        doFail(selectedIds(), $("action-fail"));
      }
    });
    $("action-remove-by-key").addEventListener("click", (e) => removeByKey($("remove-key-input").value, e.currentTarget));
    $("remove-key-input").addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        removeByKey($("remove-key-input").value, $("action-remove-by-key"));
      }
    });
  }

  // ------------------------------------------------------------------ add job
  const ADD_FIELD_INPUTS = {
    identifier: "add-job-identifier",
    payload: "add-job-payload",
    queue: "add-job-queue",
    run_at: "add-job-run-at",
    max_attempts: "add-job-max-attempts",
    priority: "add-job-priority",
    key: "add-job-key",
    job_key_mode: "add-job-key-mode",
    flags: "add-job-flags",
  };

  function clearAddErrors() {
    for (const id of Object.values(ADD_FIELD_INPUTS)) $(id).removeAttribute("aria-invalid");
    $("add-job-payload-error").hidden = true;
    $("add-job-error").hidden = true;
  }

  function addJobFieldError(field, message) {
    const input = $(ADD_FIELD_INPUTS[field] || "");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    if (field === "payload") {
      const el = $("add-job-payload-error");
      el.textContent = message;
      el.hidden = false;
    } else {
      const el = $("add-job-error");
      el.textContent = field ? `${message} (field: ${field})` : message;
      el.hidden = false;
    }
  }

  /** Builds the AddJobRequest or throws ApiError(validation) naming the field. */
  function buildAddJobRequest() {
    const val = (id) => $(id).value.trim();
    const body = {};
    const identifier = val("add-job-identifier");
    if (!identifier) throw new ApiError(0, "validation", "Task identifier is required", "identifier");
    body.identifier = identifier;

    const payloadText = $("add-job-payload").value.trim();
    if (payloadText) {
      try {
        body.payload = JSON.parse(payloadText);
      } catch (err) {
        throw new ApiError(0, "validation", `Payload is not valid JSON: ${err.message}`, "payload");
      }
    }
    const queue = val("add-job-queue");
    if (queue) body.queue = queue;
    const runAtInput = $("add-job-run-at");
    if (runAtInput.value) {
      const iso = localInputToIso(runAtInput.value);
      if (!iso) throw new ApiError(0, "validation", "Run at is not a valid date and time", "run_at");
      body.run_at = iso;
    }
    const intField = (id, field, label, min) => {
      const raw = val(id);
      if (raw === "") return;
      const n = Number(raw);
      if (!Number.isInteger(n) || (min !== undefined && n < min)) {
        throw new ApiError(0, "validation", `${label} must be a whole number${min !== undefined ? ` ≥ ${min}` : ""}`, field);
      }
      body[field] = n;
    };
    intField("add-job-max-attempts", "max_attempts", "Max attempts", 1);
    intField("add-job-priority", "priority", "Priority");
    const key = val("add-job-key");
    if (key) body.key = key;
    const mode = $("add-job-key-mode").value;
    if (mode) {
      if (!key) throw new ApiError(0, "validation", "A job key mode needs a job key", "key");
      body.job_key_mode = mode;
    }
    const flags = val("add-job-flags").split(",").map((f) => f.trim()).filter(Boolean);
    if (flags.length) body.flags = [...new Set(flags)];
    return body;
  }

  function openAddJob() {
    if (S.readOnly) return;
    clearAddErrors();
    const identifier = $("add-job-identifier");
    if (!identifier.value && S.filters.identifier) identifier.value = S.filters.identifier;
    $("add-job-dialog").showModal();
    identifier.focus();
  }

  function closeAddJob() {
    $("add-job-dialog").close();
  }

  async function submitAddJob(event) {
    event.preventDefault();
    clearAddErrors();
    let body;
    try {
      body = buildAddJobRequest();
    } catch (err) {
      addJobFieldError(err.field, err.message);
      return;
    }
    const button = $("add-job-submit");
    if (button.classList.contains("is-busy")) return;
    S.busy += 1;
    setBusy(button, true);
    try {
      const data = await post("/api/jobs", body);
      const job = data.job || {};
      closeAddJob();
      $("add-job-form").reset();
      toastOk(`Added job #${job.id}`, `${job.task_identifier || body.identifier}${job.queue_name ? ` in ${job.queue_name}` : ""} · ${job.state || ""}`);
      // No worker has registered this task (a typo?): stays until dismissed.
      if (data.warning) toast({ kind: "warning", title: "Unknown task", message: data.warning, timeout: 0 });
      await refreshAll({ quiet: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        closeAddJob();
        return;
      }
      // Shown inside the dialog: a sticky error toast would sit on top of its buttons.
      addJobFieldError(err.field, err.message);
    } finally {
      S.busy -= 1;
      setBusy(button, false);
    }
  }

  function validatePayloadLive() {
    const area = $("add-job-payload");
    const errEl = $("add-job-payload-error");
    const text = area.value.trim();
    if (!text) {
      area.removeAttribute("aria-invalid");
      errEl.hidden = true;
      return;
    }
    try {
      JSON.parse(text);
      area.removeAttribute("aria-invalid");
      errEl.hidden = true;
    } catch (err) {
      area.setAttribute("aria-invalid", "true");
      errEl.textContent = `Payload is not valid JSON: ${err.message}`;
      errEl.hidden = false;
    }
  }

  function initAddJob() {
    $("add-job-open").addEventListener("click", openAddJob);
    $("add-job-cancel").addEventListener("click", closeAddJob);
    $("add-job-close").addEventListener("click", closeAddJob);
    $("add-job-form").addEventListener("submit", submitAddJob);
    $("add-job-payload").addEventListener("input", debounce(validatePayloadLive, 400));
    $("add-job-payload").addEventListener("blur", () => {
      validatePayloadLive();
      const area = $("add-job-payload");
      if (area.getAttribute("aria-invalid") !== "true" && area.value.trim()) {
        area.value = fmtJson(JSON.parse(area.value)); // tidy valid JSON
      }
    });
    $("add-job-payload").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        $("add-job-form").requestSubmit();
      }
    });
    $("add-job-dialog").addEventListener("close", updateStatus);
  }

  // ------------------------------------------------------------------ maintenance
  const MAINT_LABELS = {
    migrate: "Migrate",
    cleanup: "Cleanup",
    "force-unlock": "Force unlock",
    "sweep-stale-workers": "Sweep stale workers",
  };

  function showMaintResult(action, data) {
    $("maint-result-wrap").hidden = false;
    $("maint-result-title").textContent = `Result · ${action} · ${fmtClock(new Date())}`;
    $("maint-result").textContent = fmtJson(data);
  }

  async function maintenance(button, body, confirm) {
    const result = await write(button, {
      confirm,
      errorTitle: `${MAINT_LABELS[body.action] || body.action} failed`,
      run: () => post("/api/maintenance", body),
    });
    if (!result) return;
    showMaintResult(body.action, result);
    const label = MAINT_LABELS[body.action] || body.action;
    toastOk(`${label}: done`, body.action === "sweep-stale-workers" && body.dry_run ? "Dry run: nothing was changed." : undefined);
    await refreshAll({ quiet: true });
  }

  function parseWorkerIds(text) {
    return [...new Set(String(text).split(/[\s,]+/).map((s) => s.trim()).filter(Boolean))];
  }

  function forceUnlock(ids, button) {
    if (!ids.length) {
      toast({ kind: "error", title: "Enter worker ids", message: "Force unlock needs at least one worker id.", field: "worker_ids" });
      $("maint-force-unlock-ids").focus();
      return;
    }
    return maintenance(button, { action: "force-unlock", worker_ids: ids }, {
      title: `Force unlock ${plural(ids.length, "worker")}?`,
      message: "Jobs and queues locked by these workers are released. Only do this for workers that are really gone.",
      details: ids,
      okLabel: "Force unlock",
    });
  }

  function initMaintenance() {
    $("maint-migrate").addEventListener("click", (e) => maintenance(e.currentTarget, { action: "migrate" }, {
      title: "Run migrations?",
      message: `Installs or upgrades the ${S.schema || "gw"} schema in the database.`,
      okLabel: "Migrate",
      danger: false,
    }));
    $("maint-cleanup").addEventListener("click", (e) => {
      const tasks = [...document.querySelectorAll("input[id^='cleanup-task-']:checked")].map((el) => el.value);
      if (!tasks.length) {
        toast({ kind: "error", title: "Choose a cleanup task", message: "Select at least one cleanup task.", field: "cleanup_tasks" });
        return;
      }
      maintenance(e.currentTarget, { action: "cleanup", cleanup_tasks: tasks }, {
        title: "Run cleanup?",
        message: "These cleanup tasks run now:",
        details: tasks,
        okLabel: "Run cleanup",
      });
    });
    $("maint-force-unlock").addEventListener("click", (e) => {
      forceUnlock(parseWorkerIds($("maint-force-unlock-ids").value), e.currentTarget);
    });
    $("maint-sweep").addEventListener("click", (e) => {
      const body = { action: "sweep-stale-workers", dry_run: $("sweep-dry-run").checked };
      try {
        const threshold = readInt($("sweep-threshold"), "Stale after", { min: 1 });
        const delay = readInt($("sweep-recovery-delay"), "Recovery delay", { min: 0 });
        if (threshold !== undefined) body.sweep_threshold_secs = threshold;
        if (delay !== undefined) body.recovery_delay_secs = delay;
      } catch (err) {
        toastError("Check the sweep settings", err);
        return;
      }
      maintenance(e.currentTarget, body, body.dry_run ? null : {
        title: "Sweep stale workers?",
        message: "Workers whose heartbeat is older than the threshold are declared dead and their jobs are released for recovery.",
        okLabel: "Sweep",
      });
    });
    $("maint-result-clear").addEventListener("click", () => {
      $("maint-result-wrap").hidden = true;
      $("maint-result").textContent = "";
    });
  }

  // ------------------------------------------------------------------ keyboard
  function initKeyboard() {
    document.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "Escape" && S.detailId !== null && !anyDialogOpen()) {
        closeDetail();
        return;
      }
      if (event.key === "Escape" && S.history.detailId !== null && !anyDialogOpen()) {
        closeHistoryDetail();
        return;
      }
      if (isTypingTarget(event.target) || anyDialogOpen() || !S.authed) return;
      if (event.key === "/") {
        event.preventDefault();
        $("filter-search").focus();
        $("filter-search").select();
      } else if (event.key === "r") {
        refreshAll({ quiet: false });
        loadCharts();
      }
    });
  }

  // ------------------------------------------------------------------ boot
  async function start() {
    if (usesToken() && !getToken()) {
      onUnauthorized(new ApiError(401, "unauthorized", "A token is required"));
      return;
    }
    try {
      const session = await get("/api/session");
      applySession(session);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      // Server unreachable or database down: show the page anyway, live refresh retries.
      toastError("Could not load the session", err);
      S.lastRefreshError = err.message;
    }
    showApp();
    applyConfigToPage();
    await Promise.all([refreshAll({ quiet: true }), loadCharts()]);
    startTimer();
  }

  function init() {
    loadConfigFromMeta();
    readFiltersFromUrl();
    syncFilterInputs();
    applyConfigToPage();
    initConfirmDialog();
    initAuth();
    initLive();
    initFilters();
    initJobTable();
    initDetail();
    initActions();
    initAddJob();
    initMaintenance();
    initHistory();
    initCharts();
    syncHistoryInputs();
    initKeyboard();
    renderSelection();
    updateStatus();
    start();
  }

  window.gwAdmin = Object.freeze({
    refresh: () => refreshAll({ quiet: false }),
    get state() {
      return S;
    },
    localInputToIso,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
