// Roomgate web client: a single page that speaks the v1.1 wire contract.
//
// Everything a user typed or another user sent is put on the page with
// `textContent` / text nodes only, never parsed as HTML, so a chat message
// cannot inject markup or script.
"use strict";

(() => {
  const API = "/api/v1";
  const SESSION_KEY = "roomgate.session";
  const ROOM_POLL_MS = 5000;
  const LEAVE_GRACE_MS = 3000;
  // Close codes, id rules and limits come from the server (/static/contract.js), not copies.
  const CONTRACT = window.ROOMGATE_CONTRACT;
  const CLOSE = CONTRACT.close;
  const RULES = CONTRACT.rules;
  const ROOM_ID_RE = new RegExp(RULES.roomIdPattern);
  const USER_ID_RE = new RegExp(RULES.userIdPattern);
  // Set by the browser, never sent by a server: the connection ended without a close frame.
  const ABNORMAL_CLOSURE = 1006;

  // ---------------------------------------------------------------- state

  const state = {
    token: null,
    userId: null,
    expiresAt: null,
    rooms: new Map(), // room id -> RoomView, as last listed
    roomOrder: [],
    next: null,
    pagesLoaded: 1,
    reservation: null, // { view: ReservationView, title, capacity }
    place: null, // { view: QueueView, title, capacity, position, etaMs }: a place in a full room's line
    offerWait: null, // { id, title, capacity, password } of the full room the notice offers to wait for
    socket: null,
    connecting: false,
    joined: false,
    leaving: false,
    room: null, // RoomView of the room we are in
    members: new Set(),
    seenMessages: new Set(),
  };

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => {
    const el = document.getElementById(id);
    if (!el) throw new Error(`missing element #${id}`);
    return el;
  };

  // Builds an element; string children become text nodes (never HTML).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // A padlock drawn inline, so it shows the same without any emoji font.
  function lockIcon(label) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("width", "14");
    svg.setAttribute("height", "14");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const body = document.createElementNS(NS, "rect");
    for (const [k, v] of Object.entries({ x: 3, y: 7, width: 10, height: 8, rx: 1.5, fill: "currentColor" })) body.setAttribute(k, String(v));
    const shackle = document.createElementNS(NS, "path");
    for (const [k, v] of Object.entries({ d: "M5 7V5a3 3 0 0 1 6 0v2", fill: "none", stroke: "currentColor", "stroke-width": 1.8 })) shackle.setAttribute(k, String(v));
    svg.append(body, shackle);
    return h("span", { class: "lock", role: "img", "aria-label": label, title: label }, svg);
  }

  function quoted(text) {
    return `“${text}”`;
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // Time only when it is today, otherwise date and time.
  function formatDateTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    if (d.toDateString() === new Date().toDateString()) return formatTime(iso);
    return d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // ---------------------------------------------------------------- notices

  let noticeTimer = null;

  // kind: "error" (a refusal or a lost connection), "info" or "ok".
  function notify(text, kind = "error", code = "", waitFor = null) {
    const box = $("notice");
    // The offer to wait belongs to the refusal it follows, never to a later notice.
    state.offerWait = waitFor;
    $("wait-for-seat").hidden = !waitFor;
    $("notice-text").textContent = text;
    box.dataset.kind = kind;
    box.dataset.code = code;
    box.setAttribute("aria-live", kind === "error" ? "assertive" : "polite");
    box.hidden = false;
    clearTimeout(noticeTimer);
    // Errors stay until dismissed or replaced; good news fades on its own.
    if (kind !== "error") noticeTimer = setTimeout(clearNotice, 6000);
  }

  function clearNotice() {
    clearTimeout(noticeTimer);
    state.offerWait = null;
    $("wait-for-seat").hidden = true;
    $("notice").hidden = true;
    $("notice-text").textContent = "";
  }

  // ---------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(status, code, message, details, retryAfter) {
      super(message || code);
      this.status = status;
      this.code = code;
      this.details = details || {};
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      throw new ApiError(0, "network", "");
    }
    const text = await res.text().catch(() => "");
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!res.ok) {
      const e = (data && data.error) || {};
      throw new ApiError(
        res.status,
        e.code || `http_${res.status}`,
        e.message || "",
        e.details,
        res.headers.get("Retry-After"),
      );
    }
    return { status: res.status, data };
  }

  // ---------------------------------------------------------------- words for refusals

  const FIELD_NAMES = {
    id: "room id",
    room_id: "room id",
    title: "room title",
    capacity: "number of seats",
    password: "password",
    user_id: "name",
    body: "message",
  };

  const FIELD_HINTS = {
    id: "Use 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit.",
    room_id: "Use 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit.",
    title: `Use 1 to ${RULES.titleMaxChars} characters.`,
    capacity: "Use a whole number of seats, at least 1 and no more than this server allows.",
    password: `Use at most ${RULES.passwordMaxBytes} bytes.`,
    user_id: "Use 1 to 64 letters, digits, dots, dashes or underscores.",
    body: `Messages hold 1 to ${RULES.messageMaxChars} characters.`,
  };

  function waitWords(retryAfter) {
    const n = Number.parseInt(retryAfter, 10);
    if (Number.isFinite(n) && n > 0) return plural(n, "second", "seconds");
    return "a moment";
  }

  // ctx: { room: id or title, capacity } to make the sentence specific.
  function describeError(err, ctx = {}) {
    const room = ctx.room ? `room ${quoted(ctx.room)}` : "this room";
    switch (err.code) {
      case "network":
        return "The server cannot be reached. Check your connection and try again.";
      case "invalid_request": {
        const field = err.details && err.details.field;
        if (field) {
          const name = FIELD_NAMES[field] || field;
          return `The ${name} is not valid. ${FIELD_HINTS[field] || err.message || ""}`.trim();
        }
        return `The server could not understand this request${err.message ? `: ${err.message}` : "."}`;
      }
      case "unauthenticated":
        return "Your token is missing, expired or not valid. Get a new token to continue.";
      case "wrong_password":
        return `That password is wrong for ${room}. Check it and try again.`;
      case "room_not_found":
        return `There is no ${room} (any more). The room list has been refreshed.`;
      case "reservation_not_found":
        return "No seat was being held for you there; it was already used, released or expired.";
      case "room_exists":
        return `A room with the id ${quoted(ctx.room || "")} already exists. Pick another id, or join that room from the list.`;
      case "room_pending":
        return `${room[0].toUpperCase()}${room.slice(1)} is still being created by someone else. Try again in ${waitWords(err.retryAfter)}.`;
      case "room_full":
        return ctx.capacity
          ? `Sorry, this room is full: all ${plural(ctx.capacity, "seat is", "seats are")} taken or held. You can wait for a seat, or try again later.`
          : "Sorry, this room is full: every seat is taken or held. You can wait for a seat, or try again later.";
      case "queue_full":
        return `The waiting line for ${room} is as long as this server allows. Try again later.`;
      case "already_joined":
        return `You are already in ${room} in another window or tab. Leave it there first.`;
      case "payload_too_large":
        return "That is more data than the server accepts in one request. Make it shorter and try again.";
      case "rate_limited":
        return `You are going too fast. Wait ${waitWords(err.retryAfter)} and try again.`;
      case "unavailable":
        return "The server cannot reach its database right now, so nothing was changed. Try again in a moment.";
      case "internal":
        return "Something went wrong on the server and nothing was changed. Try again; if it keeps happening, tell whoever runs this server.";
      default:
        return err.message
          ? `The server refused: ${err.message}`
          : `The server answered with an unexpected error (HTTP ${err.status}).`;
    }
  }

  // Returns [sentence, kind] for a WebSocket close event.
  function describeClose(code, reason, ctx) {
    const room = ctx.title ? quoted(ctx.title) : "the room";
    switch (code) {
      case CLOSE.left:
        if (ctx.waiting) return [`You left the line for ${room}.`, "info"];
        return ctx.leaving
          ? [`You left ${room}.`, "info"]
          : [`The server ended your session in ${room}.`, "info"];
      case CLOSE.going_away:
        return reason === "client_timeout"
          ? ["Your connection stopped answering, so the server closed it. Join again to continue.", "error"]
          : ["The server is shutting down or restarting, so you were disconnected. Join again in a moment.", "error"];
      case ABNORMAL_CLOSURE:
        if (ctx.waiting) return [`The connection was lost while you waited for ${room}, so your place was given up. Ask for a seat again.`, "error"];
        return [`The connection to ${room} was lost unexpectedly (a network problem, or the server went away). Join again to continue.`, "error"];
      case CLOSE.protocol_error:
        return ["Your browser sent something the server could not read, so it closed the connection. Join again to continue.", "error"];
      case CLOSE.rate_limited:
        return reason === "rate_limited"
          ? ["You sent messages too fast, so the server closed your connection. Wait a little, then join again.", "error"]
          : [`The server closed your connection because a rule was broken${reason ? ` (${reason})` : ""}. Join again to continue.`, "error"];
      case CLOSE.frame_too_large:
        return ["Your message was too large for the server, so it closed your connection. Keep messages shorter and join again.", "error"];
      case CLOSE.too_slow:
        return ["Your connection fell too far behind the room, so the server closed it. Join again to catch up.", "error"];
      case CLOSE.invalid_ticket:
        if (ctx.waiting) return ["The server no longer knows your place in line (it was given up or already used). Ask for a seat again.", "error"];
        return ["The server did not accept your entry ticket (unknown, already used or forged). Join the room again to get a new one.", "error"];
      case CLOSE.ticket_expired:
        if (ctx.waiting) return ["Your place in line expired before the page could hold it. Ask for a seat again.", "error"];
        return ["Your held seat expired before you entered the room. Join again to get a new one.", "error"];
      case CLOSE.room_full:
        if (ctx.waiting) return ["A seat came free for you, but the room turned out full when you entered. Ask for a seat again.", "error"];
        return ["Sorry, this room is full: the last seat was taken just before you could enter.", "error"];
      case CLOSE.join_failed:
        return ["The server could not record your arrival in the room (a database problem). Your seat was given back; try again in a moment.", "error"];
      default:
        return [`The connection to ${room} closed (code ${code}${reason ? `: ${reason}` : ""}).`, "error"];
    }
  }

  // ---------------------------------------------------------------- session (token)

  function setBodyState() {
    let s = "signed-out";
    if (state.token) {
      if (state.joined) s = "joined";
      else if (state.place) s = "waiting";
      else if (state.connecting) s = "connecting";
      else if (state.reservation) s = "holding";
      else s = "idle";
    }
    document.body.dataset.state = s;
  }

  function saveSession() {
    try {
      if (state.token) {
        sessionStorage.setItem(
          SESSION_KEY,
          JSON.stringify({ token: state.token, userId: state.userId, expiresAt: state.expiresAt }),
        );
      } else {
        sessionStorage.removeItem(SESSION_KEY);
      }
    } catch (_) {
      // Storage can be disabled; the session then lasts as long as the page.
    }
  }

  function restoreSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (saved && saved.token && (!saved.expiresAt || new Date(saved.expiresAt) > new Date())) {
        signedIn(saved.token, saved.userId, saved.expiresAt, false);
      }
    } catch (_) {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }

  function signedIn(token, userId, expiresAt, announce = true) {
    state.token = token;
    state.userId = userId;
    state.expiresAt = expiresAt || null;
    saveSession();
    $("whoami").replaceChildren(
      "Signed in as ",
      h("strong", {}, userId),
      expiresAt ? h("small", { class: "muted expiry" }, `token valid until ${formatDateTime(expiresAt)}`) : null,
    );
    $("signin-form").hidden = true;
    $("token-box").hidden = true;
    $("account").hidden = false;
    setBodyState();
    renderRooms();
    if (announce) notify(`Welcome, ${userId}. Pick a room to join, or create one.`, "ok");
  }

  function signOut(message) {
    if (state.place) giveUpPlace({ quiet: true });
    else if (state.socket) leaveRoom();
    dropReservationView();
    state.token = null;
    state.userId = null;
    state.expiresAt = null;
    saveSession();
    $("signin-form").hidden = false;
    $("token-box").hidden = false;
    $("account").hidden = true;
    $("whoami").textContent = "";
    setBodyState();
    renderRooms();
    if (message) notify(message, "error", "unauthenticated");
  }

  function requireToken() {
    if (state.token) return true;
    notify("Get a token first: type your name at the top and press “Get a token”.", "error");
    $("user-id").focus();
    return false;
  }

  // Handles an error from any authenticated call; returns the sentence shown.
  function showApiError(err, ctx) {
    const text = describeError(err, ctx);
    if (err.code === "unauthenticated") {
      signOut(text);
    } else {
      notify(text, "error", err.code);
    }
    return text;
  }

  async function getToken(event) {
    event.preventDefault();
    const input = $("user-id");
    const userId = input.value.trim();
    if (!USER_ID_RE.test(userId)) {
      notify(`That name cannot be used. ${FIELD_HINTS.user_id}`, "error", "invalid_request");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    const button = $("get-token");
    button.disabled = true;
    try {
      const { data } = await api("POST", "/dev/tokens", { user_id: userId });
      signedIn(data.token, data.user_id || userId, data.expires_at);
    } catch (err) {
      if (err.status === 404) {
        notify("This server does not hand out tokens by name (development tokens are switched off). Use a token from whoever runs it: open “I already have a token”.", "error", "dev_tokens_off");
        $("token-box").open = true;
      } else {
        showApiError(err, {});
      }
    } finally {
      button.disabled = false;
    }
  }

  // Reads the `sub` and `exp` claims for display only; the server checks the signature.
  function useToken(event) {
    event.preventDefault();
    const raw = $("token-input").value.trim();
    try {
      const payload = raw.split(".")[1];
      const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
      const claims = JSON.parse(json);
      if (typeof claims.sub !== "string") throw new Error("no sub");
      const expiresAt = typeof claims.exp === "number" ? new Date(claims.exp * 1000).toISOString() : null;
      $("token-input").value = "";
      signedIn(raw, claims.sub, expiresAt);
    } catch (_) {
      notify("That does not look like a token: it should be three dot-separated parts, the middle one naming you.", "error", "invalid_token");
    }
  }

  // ---------------------------------------------------------------- room list

  function roomCounts(room) {
    const line = room.waiting > 0 ? ` · ${room.waiting} waiting` : "";
    return `${room.attending} attending · ${room.reserved} reserved · ${plural(room.capacity, "seat", "seats")}${line}`;
  }

  // Whether a room has a seat for a newcomer: none while anyone waits (no barging).
  function isFull(room) {
    return room.attending + room.reserved >= room.capacity || room.waiting > 0;
  }

  async function loadRooms({ more = false } = {}) {
    const errorBox = $("rooms-error");
    try {
      const pages = [];
      let after = more ? state.next : null;
      const wanted = more ? 1 : state.pagesLoaded;
      for (let i = 0; i < wanted; i += 1) {
        const query = after ? `?limit=50&after=${encodeURIComponent(after)}` : "?limit=50";
        const { data } = await api("GET", `/rooms${query}`);
        pages.push(data);
        after = data.next;
        if (!after) break;
      }
      if (!more) {
        state.rooms.clear();
        state.roomOrder = [];
        state.pagesLoaded = Math.max(1, pages.length);
      } else {
        state.pagesLoaded += 1;
      }
      for (const page of pages) {
        for (const room of page.rooms || []) {
          if (!state.rooms.has(room.id)) state.roomOrder.push(room.id);
          state.rooms.set(room.id, room);
        }
      }
      state.next = pages.length ? pages[pages.length - 1].next : null;
      errorBox.hidden = true;
      renderRooms();
    } catch (err) {
      // Polling failures go beside the list, not into the main notice, so a
      // server that is briefly away does not keep shouting.
      errorBox.textContent = `The room list could not be loaded. ${describeError(err)}`;
      errorBox.hidden = false;
    }
  }

  function roomItem(id) {
    const li = h("li", { class: "room", "data-testid": `room-${id}`, "data-room-id": id });
    const title = h("span", { class: "room-title" });
    const lock = lockIcon("Password required");
    const idLabel = h("span", { class: "room-id" });
    const badge = h("span", { class: "badge" });
    const bar = h("span", { class: "bar", "aria-hidden": "true" },
      h("span", { class: "bar-attending" }),
      h("span", { class: "bar-reserved" }));
    const counts = h("span", { class: "counts", "data-testid": `occupancy-${id}` });
    const join = h("button", { type: "button", class: "join", "data-testid": `join-${id}`, onclick: () => joinRoom(id) }, "Join");
    li.append(
      h("div", { class: "room-head" }, title, lock, badge),
      idLabel,
      h("div", { class: "occupancy" }, bar, counts),
      join,
    );
    return li;
  }

  function updateRoomItem(li, room) {
    li.querySelector(".room-title").textContent = room.title;
    li.querySelector(".lock").hidden = !room.has_password;
    li.querySelector(".room-id").textContent = `#${room.id}`;
    const full = isFull(room);
    const here = state.room && state.room.id === room.id && (state.joined || state.connecting);
    const inLine = !here && state.place && state.place.view.room_id === room.id;
    const badge = li.querySelector(".badge");
    badge.textContent = here ? "you are here" : inLine ? "you are waiting" : room.state === "pending" ? "being created" : full ? "full" : "open";
    badge.dataset.kind = here ? "here" : inLine ? "waiting" : room.state === "pending" ? "pending" : full ? "full" : "open";
    li.querySelector(".counts").textContent = roomCounts(room);
    const cap = Math.max(1, room.capacity);
    li.querySelector(".bar-attending").style.width = `${Math.min(100, (room.attending / cap) * 100)}%`;
    li.querySelector(".bar-reserved").style.width = `${Math.min(100, (room.reserved / cap) * 100)}%`;
    const join = li.querySelector(".join");
    join.disabled = !state.token || here || inLine;
    join.textContent = here ? "Joined" : inLine ? "Waiting" : "Join";
    join.setAttribute("aria-label", here ? `You are in ${room.title}` : `Join ${room.title}${room.has_password ? " (password required)" : ""}`);
    li.classList.toggle("current", Boolean(here));
  }

  function renderRooms() {
    const list = $("room-list");
    const existing = new Map();
    for (const li of list.children) existing.set(li.dataset.roomId, li);
    const order = state.roomOrder.filter((id) => state.rooms.has(id));
    // Reuse items by room id so that a refresh does not steal keyboard focus.
    order.forEach((id, index) => {
      let li = existing.get(id);
      if (!li) li = roomItem(id);
      existing.delete(id);
      updateRoomItem(li, state.rooms.get(id));
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    });
    for (const li of existing.values()) li.remove();
    $("rooms-empty").hidden = order.length > 0;
    $("more-rooms").hidden = !state.next;
  }

  // ---------------------------------------------------------------- create a room

  async function createRoom(event) {
    event.preventDefault();
    if (!requireToken()) return;
    const idInput = $("room-id");
    const titleInput = $("room-title");
    const capInput = $("room-capacity");
    const pwInput = $("room-password");
    const id = idInput.value.trim();
    const title = titleInput.value.trim();
    const capacity = Number(capInput.value);
    const password = pwInput.value;

    for (const el of [idInput, titleInput, capInput, pwInput]) el.removeAttribute("aria-invalid");
    const bad = (el, field) => {
      el.setAttribute("aria-invalid", "true");
      el.focus();
      notify(`The ${FIELD_NAMES[field]} is not valid. ${FIELD_HINTS[field]}`, "error", "invalid_request");
    };
    if (!ROOM_ID_RE.test(id)) return bad(idInput, "id");
    if (title.length < 1 || title.length > 100) return bad(titleInput, "title");
    if (!Number.isInteger(capacity) || capacity < 1) return bad(capInput, "capacity");
    if (new TextEncoder().encode(password).length > 128) return bad(pwInput, "password");

    const body = { id, title, capacity };
    if (password) body.password = password;
    const button = $("create-room");
    button.disabled = true;
    try {
      const { data } = await api("POST", "/rooms", body);
      // Only now that the new seat is ours is the current room left.
      await leaveIfInRoom(id);
      pwInput.value = "";
      idInput.value = "";
      titleInput.value = "";
      holdSeat(data.reservation, data.room);
      notify(`Room ${quoted(title)} is reserved for you. Entering it makes it real…`, "info");
      enterRoom();
    } catch (err) {
      showApiError(err, { room: id });
      if (err.code === "invalid_request") {
        const map = { id: idInput, title: titleInput, capacity: capInput, password: pwInput };
        const el = map[err.details && err.details.field];
        if (el) {
          el.setAttribute("aria-invalid", "true");
          el.focus();
        }
      }
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- reserve, enter, cancel

  let passwordResolve = null;

  function askPassword(room) {
    const dialog = $("password-dialog");
    $("password-dialog-room").textContent = `Room ${quoted(room.title)} (#${room.id}) asks for a password.`;
    $("password-input").value = "";
    return new Promise((resolve) => {
      passwordResolve = resolve;
      dialog.showModal();
      $("password-input").focus();
    });
  }

  function onPasswordDialogClose() {
    const dialog = $("password-dialog");
    const resolve = passwordResolve;
    passwordResolve = null;
    if (!resolve) return;
    resolve(dialog.returnValue === "ok" ? $("password-input").value : null);
    $("password-input").value = "";
  }

  async function joinRoom(id, known) {
    if (!requireToken()) return;
    const listed = known || state.rooms.get(id) || { id, title: id, has_password: false, capacity: 0 };
    let password;
    if (listed.has_password) {
      password = await askPassword(listed);
      if (password === null) return;
    }
    const body = password === undefined ? {} : { password };
    try {
      const { data } = await api("POST", `/rooms/${encodeURIComponent(id)}/reservations`, body);
      // Only now that the new seat is ours is the current room left.
      await leaveIfInRoom(id);
      holdSeat(data, listed);
      enterRoom();
    } catch (err) {
      // A room whose password was set after our list was loaded: ask once.
      if (err.code === "wrong_password" && password === undefined) {
        await loadRooms();
        const fresh = state.rooms.get(id) || listed;
        joinRoom(id, { ...fresh, has_password: true });
        return;
      }
      if (err.code === "room_full") {
        notify(describeError(err, { room: listed.title, capacity: listed.capacity }), "error", err.code,
          { id, title: listed.title, capacity: listed.capacity, password });
      } else {
        showApiError(err, { room: listed.title, capacity: listed.capacity });
      }
      if (err.code === "room_not_found" || err.code === "room_full") loadRooms();
    }
  }

  let reservationTimer = null;

  function holdSeat(view, room) {
    state.reservation = { view, title: room.title || view.room_id, capacity: room.capacity || 0 };
    state.room = { ...room, id: view.room_id };
    $("chat-placeholder").hidden = true;
    $("room-view").hidden = true;
    $("reservation").hidden = false;
    $("chat-title").textContent = state.reservation.title;
    clearInterval(reservationTimer);
    reservationTimer = setInterval(renderReservation, 1000);
    renderReservation();
    setBodyState();
  }

  function renderReservation() {
    const r = state.reservation;
    if (!r) return;
    const left = Math.ceil((new Date(r.view.expires_at) - Date.now()) / 1000);
    if (left <= 0 && !state.connecting) {
      dropReservationView();
      notify(`The seat held for you in ${quoted(r.title)} has expired. Join again to get a new one.`, "error", "ticket_expired");
      return;
    }
    const secs = Math.max(0, left);
    const doing = state.connecting ? " Entering…" : "";
    $("reservation-text").textContent =
      `A seat is held for you in ${quoted(r.title)} until ${formatTime(r.view.expires_at)} (${plural(secs, "second", "seconds")} left).${doing}`;
    $("enter-room").disabled = state.connecting;
  }

  function dropReservationView() {
    clearInterval(reservationTimer);
    reservationTimer = null;
    state.reservation = null;
    $("reservation").hidden = true;
    if (!state.joined && $("room-view").hidden) {
      $("chat-placeholder").hidden = false;
      $("chat-title").textContent = "Not in a room";
      if (!state.socket) state.room = null;
    }
    setBodyState();
  }

  async function cancelReservation() {
    const r = state.reservation;
    if (!r) return;
    // If the socket is still opening, drop it first: whatever it managed to
    // confirm is undone by the server when the session ends.
    if (state.socket && !state.joined) {
      const ws = state.socket;
      state.socket = null;
      state.connecting = false;
      ws.close(CLOSE.left);
    }
    dropReservationView();
    try {
      await api("DELETE", `/rooms/${encodeURIComponent(r.view.room_id)}/reservations/me`);
      notify(`Your held seat in ${quoted(r.title)} was given back.`, "info");
    } catch (err) {
      showApiError(err, { room: r.title });
    }
    loadRooms();
  }

  // ---------------------------------------------------------------- the waiting line

  // Asks for a seat with `"wait": true`: a seat at once if one freed meanwhile, otherwise a
  // place in the line whose socket tells the position and becomes the session when a seat comes.
  async function waitForSeat(room) {
    if (!requireToken()) return;
    // Already in this room's line: the page shows that place; asking again changes nothing.
    if (state.place && state.place.view.room_id === room.id) return;
    const body = room.password === undefined ? { wait: true } : { password: room.password, wait: true };
    const button = $("wait-for-seat");
    button.disabled = true;
    try {
      const { data } = await api("POST", `/rooms/${encodeURIComponent(room.id)}/reservations`, body);
      await leaveIfInRoom(room.id);
      clearNotice();
      // 202 is a place; 200 may be a place already held, which is the one answer with a position.
      if (data && typeof data.position === "number") {
        takePlace(data, room);
      } else {
        holdSeat(data, room);
        enterRoom();
      }
    } catch (err) {
      showApiError(err, { room: room.title, capacity: room.capacity });
      if (err.code === "room_not_found") loadRooms();
    } finally {
      button.disabled = false;
    }
  }

  function takePlace(view, room) {
    state.place = { view, title: room.title || view.room_id, capacity: room.capacity || 0, position: view.position, etaMs: null };
    state.room = { ...room, id: view.room_id };
    $("chat-placeholder").hidden = true;
    $("room-view").hidden = true;
    $("reservation").hidden = true;
    $("waiting").hidden = false;
    $("chat-title").textContent = state.place.title;
    renderPlace();
    const ws = new WebSocket(wsUrl(view.ws_url));
    state.socket = ws;
    state.joined = false;
    state.leaving = false;
    setConnection("waiting", "Waiting for a seat");
    ws.addEventListener("message", (event) => {
      if (ws !== state.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      onFrame(frame);
    });
    ws.addEventListener("close", (event) => onSocketClose(ws, event));
    setBodyState();
    renderRooms();
    $("leave-line").focus();
  }

  function onWaiting(frame) {
    const place = state.place;
    if (!place) return;
    const first = !place.told;
    place.told = true;
    place.position = frame.position;
    place.etaMs = frame.eta_ms === undefined ? null : frame.eta_ms;
    renderPlace();
    // The place is held now: the room list's line count includes it.
    if (first) loadRooms();
  }

  function etaWords(ms) {
    if (ms === null || ms === undefined) return "estimating…";
    const seconds = Math.max(1, Math.round(ms / 1000));
    if (seconds < 60) return `about ${plural(seconds, "second", "seconds")}`;
    return `about ${plural(Math.round(seconds / 60), "minute", "minutes")}`;
  }

  function renderPlace() {
    const place = state.place;
    if (!place) return;
    const ahead = place.position - 1;
    $("waiting-position").textContent = `#${place.position}`;
    $("waiting-eta").textContent = etaWords(place.etaMs);
    $("waiting-text").textContent = ahead === 0
      ? `${quoted(place.title)} is full. You are next in line: the next seat that frees is yours.`
      : `${quoted(place.title)} is full. You are in line, with ${plural(ahead, "person", "people")} ahead of you.`;
  }

  function dropPlaceView() {
    state.place = null;
    $("waiting").hidden = true;
    if (!state.joined) {
      $("chat-placeholder").hidden = false;
      $("chat-title").textContent = "Not in a room";
      state.room = null;
    }
    setBodyState();
    renderRooms();
  }

  // Gives the place up: closing its socket does it at once; the DELETE makes sure of it even
  // when the socket had not opened yet (a 404 then only means it is already gone).
  function giveUpPlace({ quiet = false } = {}) {
    const place = state.place;
    if (!place) return;
    const ws = state.socket;
    state.socket = null;
    if (ws) ws.close(CLOSE.left);
    dropPlaceView();
    setConnection("none", "Not connected");
    api("DELETE", `/rooms/${encodeURIComponent(place.view.room_id)}/reservations/me`).catch(() => {});
    if (!quiet) notify(`You gave up your place in line for ${quoted(place.title)}.`, "info");
    loadRooms();
  }

  function wsUrl(path) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${path}`;
  }

  function enterRoom() {
    const r = state.reservation;
    if (!r || state.socket) return;
    const ws = new WebSocket(wsUrl(r.view.ws_url));
    state.socket = ws;
    state.connecting = true;
    state.joined = false;
    state.leaving = false;
    setConnection("connecting", "Entering…");
    renderReservation();
    setBodyState();
    ws.addEventListener("message", (event) => {
      if (ws !== state.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      onFrame(frame);
    });
    ws.addEventListener("close", (event) => onSocketClose(ws, event));
  }

  function setConnection(kind, text) {
    $("chat").dataset.connection = kind;
    const badge = $("connection");
    badge.textContent = text;
    badge.dataset.kind = kind;
  }

  // ---------------------------------------------------------------- in the room

  function onFrame(frame) {
    switch (frame.type) {
      case "joined":
        onJoined(frame);
        break;
      case "message":
        appendMessage(frame);
        break;
      case "presence":
        onPresence(frame);
        break;
      case "waiting":
        onWaiting(frame);
        break;
      case "error":
        notify(`The server did not accept that: ${frame.message || frame.code}.`, "error", frame.code || "invalid_message");
        break;
      default:
        break;
    }
  }

  function onJoined(frame) {
    const title = (frame.room && frame.room.title) || (state.reservation && state.reservation.title) || "";
    state.joined = true;
    state.connecting = false;
    state.room = frame.room || state.room;
    clearInterval(reservationTimer);
    state.reservation = null;
    const waited = state.place;
    state.place = null;
    $("waiting").hidden = true;
    $("reservation").hidden = true;
    $("chat-placeholder").hidden = true;
    $("room-view").hidden = false;
    $("chat-title").textContent = title;
    state.members = new Set(frame.members || []);
    state.seenMessages = new Set();
    const log = $("messages");
    log.replaceChildren();
    const history = frame.history || [];
    if (history.length) {
      log.append(h("li", { class: "divider", "data-testid": "history-divider" }, "Earlier messages"));
      for (const m of history) appendMessage(m, { history: true });
    }
    log.append(h("li", { class: "presence self", "data-testid": "presence" },
      waited ? `A seat came free: you joined ${quoted(title)}.` : `You joined ${quoted(title)}.`));
    scrollToEnd(true);
    renderMembers();
    renderOccupancy();
    setConnection("joined", "Connected");
    setMessageFormEnabled(true);
    $("leave").textContent = "Leave room";
    setBodyState();
    if (state.rooms.has(state.room.id)) state.rooms.set(state.room.id, { ...state.room });
    renderRooms();
    loadRooms();
    notify(waited ? `Your wait is over: you are in ${quoted(title)}.` : `You are in ${quoted(title)}.`, "ok");
    $("message-input").focus();
  }

  let presenceRefresh = null;

  function onPresence(frame) {
    if (frame.event === "joined") state.members.add(frame.user_id);
    else if (frame.event === "left") state.members.delete(frame.user_id);
    if (state.room && typeof frame.attending === "number") {
      state.room.attending = frame.attending;
      // Keep the list's entry for this room as current as the room itself.
      const listed = state.rooms.get(state.room.id);
      if (listed) {
        state.rooms.set(state.room.id, { ...listed, attending: frame.attending });
        renderRooms();
      }
      // The held-seat count changed too; the list endpoint has it.
      clearTimeout(presenceRefresh);
      presenceRefresh = setTimeout(loadRooms, 300);
    }
    // Our own arrival is already announced by the joined frame.
    if (!(frame.event === "joined" && frame.user_id === state.userId)) {
      const verb = frame.event === "joined" ? "joined" : "left";
      $("messages").append(h("li", { class: `presence ${verb}`, "data-testid": "presence", "data-user": frame.user_id }, `${frame.user_id} ${verb} the room.`));
      scrollToEnd(false);
    }
    renderMembers();
    renderOccupancy();
  }

  function renderMembers() {
    const list = $("members");
    list.replaceChildren(
      ...[...state.members].sort().map((m) =>
        h("li", { class: m === state.userId ? "member me" : "member", "data-testid": "member", "data-user": m },
          m, m === state.userId ? h("span", { class: "muted" }, " (you)") : null)),
    );
  }

  function renderOccupancy() {
    const r = state.room;
    if (!r) return;
    $("room-occupancy").replaceChildren(
      r.has_password ? lockIcon("Password protected") : "",
      `#${r.id} · ${plural(r.attending ?? state.members.size, "person", "people")} here · ${plural(r.capacity, "seat", "seats")}`,
    );
  }

  function appendMessage(m, { history = false } = {}) {
    if (m.id !== undefined && state.seenMessages.has(m.id)) return;
    if (m.id !== undefined) state.seenMessages.add(m.id);
    const own = m.user_id === state.userId;
    const li = h("li", {
      class: `message${own ? " own" : ""}${history ? " history" : ""}`,
      "data-testid": "message",
      "data-user": m.user_id,
      "data-id": m.id,
    },
    h("div", { class: "message-head" },
      h("span", { class: "author" }, m.user_id),
      h("time", { datetime: m.sent_at, class: "muted" }, formatTime(m.sent_at))),
    h("p", { class: "body", "data-testid": "message-body" }, m.body));
    $("messages").append(li);
    scrollToEnd(own);
  }

  function scrollToEnd(force) {
    const log = $("messages");
    const nearEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    if (force || nearEnd) log.scrollTop = log.scrollHeight;
  }

  function setMessageFormEnabled(on) {
    $("message-input").disabled = !on;
    $("send").disabled = !on;
    $("leave").disabled = !on;
  }

  function sendMessage(event) {
    event.preventDefault();
    const input = $("message-input");
    const body = input.value;
    if (!body.trim()) return;
    if ([...body].length > RULES.messageMaxChars) {
      notify(`That message is too long. ${FIELD_HINTS.body}`, "error", "invalid_message");
      return;
    }
    const ws = state.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN || !state.joined) {
      notify("You are not connected to a room, so the message was not sent.", "error");
      return;
    }
    ws.send(JSON.stringify({ type: "message", body }));
    input.value = "";
    input.focus();
  }

  function leaveRoom() {
    const ws = state.socket;
    if (!ws) {
      // Already disconnected: the button only puts the old conversation away.
      closeRoomView();
      return;
    }
    state.leaving = true;
    setConnection("leaving", "Leaving…");
    setMessageFormEnabled(false);
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "leave" }));
      // The server closes with 1000 after `leave`; if it does not, close ourselves.
      setTimeout(() => {
        if (ws.readyState !== WebSocket.CLOSED) ws.close(CLOSE.left);
      }, LEAVE_GRACE_MS);
    } else {
      ws.close(CLOSE.left);
    }
  }

  function closeRoomView() {
    $("room-view").hidden = true;
    $("chat-title").textContent = "Not in a room";
    $("chat-placeholder").hidden = false;
    setConnection("none", "Not connected");
    state.room = null;
    renderRooms();
  }

  // Leaves the current room (or drops the seat being entered) before moving to
  // another one; resolves once the old socket is closed or the grace time is over.
  function leaveIfInRoom(nextRoomId) {
    if (state.place) {
      // Waiting elsewhere (or here, asking again): the place is given up for the new seat.
      giveUpPlace({ quiet: true });
      return Promise.resolve(true);
    }
    const ws = state.socket;
    if (!ws) {
      const old = state.reservation;
      if (old) {
        dropReservationView();
        // A seat still held elsewhere is given back rather than left to expire.
        // For the same room the server handed back this very reservation, so keep it.
        if (old.view.room_id !== nextRoomId) {
          api("DELETE", `/rooms/${encodeURIComponent(old.view.room_id)}/reservations/me`).catch(() => {});
        }
      }
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      ws.addEventListener("close", () => resolve(true), { once: true });
      leaveRoom();
      setTimeout(() => resolve(ws.readyState === WebSocket.CLOSED), LEAVE_GRACE_MS + 500);
    });
  }

  function onSocketClose(ws, event) {
    if (ws !== state.socket) return;
    const wasJoined = state.joined;
    const place = state.place;
    if (place) {
      // A waiting socket that ended: its place is gone with it (the contract gives it up at once).
      const [text, kind] = describeClose(event.code, event.reason, { title: place.title, waiting: true });
      state.socket = null;
      dropPlaceView();
      setConnection("closed", `Disconnected (${event.code})`);
      notify(text, kind, `close_${event.code}`);
      loadRooms();
      return;
    }
    const title = (state.room && state.room.title) || (state.reservation && state.reservation.title) || "";
    const [text, kind] = describeClose(event.code, event.reason, { title, leaving: state.leaving });
    // Turned away at the door because the last seat went just before: the line is the way in.
    const offer = !wasJoined && event.code === CLOSE.room_full && state.room
      ? { id: state.room.id, title, capacity: state.room.capacity || 0 }
      : null;
    state.socket = null;
    state.connecting = false;
    state.joined = false;
    setMessageFormEnabled(false);
    setConnection("closed", event.code === CLOSE.left && state.leaving ? "Not connected" : `Disconnected (${event.code})`);

    // The ticket is single-use: after any close it cannot be used again,
    // except when the socket never opened at all (1006 before the joined frame),
    // in which case the seat may still be held and can be entered or cancelled.
    const seatMayBeHeld = !wasJoined && event.code === ABNORMAL_CLOSURE && state.reservation &&
      new Date(state.reservation.view.expires_at) > new Date();
    if (seatMayBeHeld) {
      renderReservation();
    } else {
      dropReservationView();
    }

    if (wasJoined) {
      $("messages").append(h("li", { class: "presence closed", "data-testid": "closed-line" }, text));
      scrollToEnd(true);
    }
    if (state.leaving && event.code === CLOSE.left) {
      closeRoomView();
    } else if (wasJoined) {
      // Keep the conversation readable; the button now only puts it away.
      $("leave").disabled = false;
      $("leave").textContent = "Close";
    }
    state.leaving = false;
    notify(text, kind, `close_${event.code}`, offer);
    setBodyState();
    renderRooms();
    loadRooms();
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    $("signin-form").addEventListener("submit", getToken);
    $("token-form").addEventListener("submit", useToken);
    $("sign-out").addEventListener("click", () => {
      signOut();
      notify("You are signed out.", "info");
    });
    $("notice-close").addEventListener("click", clearNotice);
    $("refresh-rooms").addEventListener("click", () => loadRooms());
    $("more-rooms").addEventListener("click", () => loadRooms({ more: true }));
    $("create-form").addEventListener("submit", createRoom);
    $("enter-room").addEventListener("click", enterRoom);
    $("cancel-reservation").addEventListener("click", cancelReservation);
    $("wait-for-seat").addEventListener("click", () => {
      const room = state.offerWait;
      if (room) waitForSeat(room);
    });
    $("leave-line").addEventListener("click", () => giveUpPlace());
    $("message-form").addEventListener("submit", sendMessage);
    $("leave").addEventListener("click", leaveRoom);
    $("password-dialog").addEventListener("close", onPasswordDialogClose);
    $("message-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("message-form").requestSubmit();
      }
    });
    window.addEventListener("pagehide", () => {
      const ws = state.socket;
      if (ws && ws.readyState === WebSocket.OPEN) {
        // A waiting socket gives its place up by closing; a member leaves.
        if (state.place) ws.close(CLOSE.left);
        else ws.send(JSON.stringify({ type: "leave" }));
      }
    });

    setMessageFormEnabled(false);
    restoreSession();
    setBodyState();
    loadRooms();
    setInterval(() => {
      if (document.visibilityState === "visible") loadRooms();
    }, ROOM_POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
