/**
 * Classroom sessions on the viewer page. The presenter starts one (code, link, QR code),
 * and from then on every change of view is PUT, one request at a time, the newest view
 * winning; the class's images arrive on the presenter's wall, and none reaches the class
 * unless the presenter shows it. A follower (the page at /join/CODE) reads the views as
 * Server-Sent Events and shows each one, unless it has left to look around on its own.
 *
 * app.js owns the view: `currentView()` reads it, `applyView(view)` shows one, and it calls
 * `hooks.onChange()` when the view changed and `hooks.onOwnImage()` when this page made
 * its own image. This module owns nothing else of the page.
 */

import { $ } from "./dom.js";
import * as sessions from "./session-api.js";

const STORAGE_KEY = "convscope.session";
const WALL_POLL_MS = 1000;

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

export function setupSession(page) {
  const match = location.pathname.match(/^\/join\/([A-Za-z0-9]{6})\/?$/);
  if (match) follow(match[1].toUpperCase(), page);
  else present(page);
}

// --- the presenter -------------------------------------------------------------------------------

function present({ hooks, currentView, applyView, showImage, showError }) {
  const start = $("session-start");
  start.hidden = false;
  let session = null;
  let sending = false;
  let again = false;
  let lastSent = null;
  let poll = null;
  const shownEntries = new Map();

  const publish = async () => {
    if (!session) return;
    if (sending) {
      again = true;
      return;
    }
    const view = currentView();
    const text = JSON.stringify(view);
    if (text === lastSent) return;
    sending = true;
    try {
      const sentAt = performance.timeOrigin + performance.now();
      await sessions.putState(session.code, session.token, view);
      lastSent = text;
      document.body.dataset.sessionSentAt = String(sentAt);
    } catch (error) {
      if (error.status === 404 || error.status === 403) stop(`The class session ended: ${error.message}`);
      else showError(error.message);
    } finally {
      sending = false;
      if (again && session) {
        again = false;
        publish();
      }
    }
  };

  const refreshWall = async () => {
    if (!session) return;
    try {
      const wall = await sessions.getWall(session.code, session.token);
      $("session-followers").textContent = wall.followers === 1 ? "1 following" : `${wall.followers} following`;
      document.body.dataset.sessionFollowers = String(wall.followers);
      renderWall(wall);
    } catch (error) {
      if (error.status === 404 || error.status === 403) stop("The class session has ended (it expired or was ended).");
    }
  };

  const renderWall = (wall) => {
    const list = $("session-wall-list");
    for (const entry of wall.entries) {
      if (shownEntries.has(entry.id)) continue;
      const item = el("li", "wall-entry");
      item.dataset.entry = entry.id;
      const image = el("img", "wall-image pixelated");
      image.src = entry.image;
      image.alt = `An image from ${entry.name || "a student"}`;
      const caption = el("p", "wall-caption");
      const read = el("strong", "", `${entry.prediction} ${(100 * entry.probability).toFixed(0)}%`);
      caption.append("read as ", read);
      if (entry.label !== null) {
        const right = entry.label === entry.prediction;
        item.classList.add(right ? "wall-right" : "wall-wrong");
        caption.append(el("span", "wall-label", ` · meant ${entry.label}`));
      }
      if (entry.name) caption.append(el("span", "wall-name", ` · ${entry.name}`));
      const show = el("button", "button button-small wall-show", "Show to the class");
      show.type = "button";
      show.addEventListener("click", () => showEntry(entry));
      item.append(image, caption, show);
      list.prepend(item);
      shownEntries.set(entry.id, item);
    }
    $("session-wall-count").textContent = String(wall.entries.length);
    $("session-wall-empty").hidden = wall.entries.length > 0;
    renderTally(wall.tally);
  };

  const showEntry = async (entry) => {
    // The student's run, read again if the server still has it; else their image, sent again.
    const stored = await fetch(`/api/runs/${encodeURIComponent(entry.run)}`);
    if (stored.ok) applyView({ model: entry.model, sample: null, run: entry.run });
    else {
      const blob = await (await fetch(entry.image)).blob();
      showImage(new File([blob], "class-image.png", { type: "image/png" }), entry.model);
    }
  };

  const show = () => {
    start.hidden = true;
    $("session-bar").hidden = false;
    $("session-presenter").hidden = false;
    $("session-code").textContent = session.code;
    $("session-dialog-code").textContent = session.code;
    const link = $("session-link");
    link.href = session.joinUrl;
    link.textContent = session.joinUrl.replace(/^https?:\/\//, "");
    $("session-dialog-link").textContent = link.textContent;
    $("session-qr").src = sessions.qrUrl(session.code);
    $("session-dialog-qr").src = sessions.qrUrl(session.code);
    document.body.dataset.session = session.code;
    hooks.onChange = publish;
    lastSent = null;
    publish();
    refreshWall();
    poll = setInterval(refreshWall, WALL_POLL_MS);
  };

  const stop = (message) => {
    session = null;
    hooks.onChange = null;
    clearInterval(poll);
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // No storage: nothing was kept.
    }
    $("session-bar").hidden = true;
    $("session-wall").hidden = true;
    $("session-wall-list").replaceChildren();
    shownEntries.clear();
    start.hidden = false;
    delete document.body.dataset.session;
    if (message) showError(message);
  };

  start.addEventListener("click", async () => {
    try {
      const made = await sessions.createSession();
      session = { code: made.code, token: made.presenter_token, joinUrl: made.join_url };
      try {
        sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
      } catch {
        // No storage: the session lasts as long as this page.
      }
      show();
    } catch (error) {
      showError(error.message);
    }
  });
  $("session-end").addEventListener("click", async () => {
    if (!session) return;
    try {
      await sessions.endSession(session.code, session.token);
    } catch {
      // Gone already: ending it is what we wanted.
    }
    stop();
  });
  $("session-wall-toggle").addEventListener("click", () => {
    const wall = $("session-wall");
    wall.hidden = !wall.hidden;
    $("session-wall-toggle").setAttribute("aria-expanded", String(!wall.hidden));
  });
  $("session-wall-close").addEventListener("click", () => {
    $("session-wall").hidden = true;
    $("session-wall-toggle").setAttribute("aria-expanded", "false");
  });
  const dialog = $("session-dialog");
  $("session-qr-button").addEventListener("click", () => dialog.showModal());
  $("session-dialog-close").addEventListener("click", () => dialog.close());

  try {
    const kept = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    if (kept?.code && kept?.token) {
      session = kept;
      show();
    }
  } catch {
    // Nothing kept: no session until the button is pressed.
  }
}

function renderTally(tables) {
  const box = $("session-tally");
  box.replaceChildren();
  for (const t of tables) {
    const used = t.classes.filter((_, i) => t.counts[i].some(Boolean) || t.counts.some((row) => row[i]));
    const index = new Map(t.classes.map((c, i) => [c, i]));
    const table = el("table", "tally");
    table.append(el("caption", "", `${t.model}: ${t.correct} of ${t.total} read as meant`));
    const head = el("tr");
    head.append(el("th", "tally-corner", "meant ↓ read →"));
    for (const c of used) head.append(el("th", "", c));
    table.append(head);
    for (const meant of used) {
      const row = el("tr");
      row.append(el("th", "", meant));
      for (const read of used) {
        const n = t.counts[index.get(meant)][index.get(read)];
        const cell = el("td", n ? (meant === read ? "tally-right" : "tally-wrong") : "", n ? String(n) : "");
        row.append(cell);
      }
      table.append(row);
    }
    box.append(table);
  }
}

// --- a follower ------------------------------------------------------------------------------------

function follow(code, { hooks, applyView, ownImage }) {
  let following = true;
  let latest = null;
  let ended = false;
  $("session-bar").hidden = false;
  $("session-follower").hidden = false;
  $("session-follow-code").textContent = code;
  document.body.dataset.follow = code;

  const status = (text) => {
    $("session-follow-status-text").textContent = text;
  };
  const setFollowing = (on) => {
    following = on;
    document.body.dataset.following = String(on);
    const button = $("session-follow-toggle");
    button.setAttribute("aria-pressed", String(on));
    button.title = on ? "Click to look around on your own" : "Click to see what the teacher shows again";
    if (ended) return;
    status(on ? "Following the teacher in" : "Looking around on your own; the teacher is in");
    if (on && latest) applyView(latest);
  };
  setFollowing(true);
  $("session-follow-toggle").addEventListener("click", () => setFollowing(!following));

  const events = new EventSource(sessions.eventsUrl(code));
  events.onmessage = (event) => {
    latest = JSON.parse(event.data);
    document.body.dataset.sessionViews = String(Number(document.body.dataset.sessionViews || 0) + 1);
    if (following) {
      applyView(latest);
      document.body.dataset.sessionAppliedAt = String(performance.timeOrigin + performance.now());
    }
  };
  events.addEventListener("end", () => {
    events.close();
    ended = true;
    status("The teacher ended the session");
    $("session-follow-toggle").hidden = true;
  });
  events.onerror = async () => {
    if (ended) return;
    try {
      await sessions.getSession(code);
      status("Reconnecting to the teacher in");
    } catch (error) {
      if (error.status === 404) {
        events.close();
        ended = true;
        status("There is no class session with this code (it may have ended):");
        $("session-follow-toggle").hidden = true;
      }
    }
  };

  // The student's own image: leave following (so it stays on screen) and offer to send it.
  let askedFor = null;
  hooks.onOwnImage = (starting) => {
    if (starting && following) setFollowing(false);
    const own = ownImage();
    $("session-send-button").disabled = !own;
    $("session-send").hidden = !own;
    if (!own || own.run === askedFor) return; // asked already: keep what the student chose
    askedFor = own.run;
    const select = $("session-label");
    const prompt = own.drawn ? "what did you draw?" : "what is it? (optional)";
    const chosen = select.value; // chosen while the last stroke's run was still computing
    select.replaceChildren(new Option(prompt, ""), ...own.classes.map((c) => new Option(c, c)));
    if (own.classes.includes(chosen)) select.value = chosen;
  };
  $("session-send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const own = ownImage();
    if (!own) return;
    const button = $("session-send-button");
    button.disabled = true;
    try {
      const entry = await sessions.submit(code, {
        run: own.run,
        label: $("session-label").value || null,
        name: $("session-name").value.trim() || null,
      });
      $("session-send-status").textContent = `Sent: the teacher sees it (read as ${entry.prediction}).`;
    } catch (error) {
      $("session-send-status").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
}
