// The chatts on the page: the newest, then new ones as they come (GET /chatts, which says which are signed), and
// posting one. Uses api(), $, say(), formValues(), ApiError and state from app.js.
"use strict";

const POLL_MS = 2000;
const FIRST_LOAD = 200; // newest chatts shown when the page opens

const feed = { lastId: null, polling: false, timer: null };

// A signed chatt was posted by the signed-in account of that name; an anonymous one by anybody, under any name.
const SIGNED = { text: "signed in", title: "Posted by the account of this name, signed in" };
const ANONYMOUS = { text: "not signed in", title: "Posted without signing in: anyone can post under any name" };

function renderChatt(chatt) {
  const li = document.createElement("li");
  li.dataset.id = chatt.id;
  li.className = chatt.signed ? "signed" : "anonymous";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = chatt.username;
  const mark = chatt.signed ? SIGNED : ANONYMOUS;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = mark.text;
  badge.title = mark.title;
  const when = document.createElement("time");
  when.className = "when";
  when.dateTime = chatt.timestamp;
  when.textContent = new Date(chatt.timestamp).toLocaleString();
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = chatt.message; // never innerHTML: chatts are other people's text
  li.append(who, badge, when, text);
  return li;
}

function showEmpty() {
  $("chatts-empty").hidden = $("chatts").childElementCount > 0;
}

async function refreshChatts() {
  const list = $("chatts");
  const path = feed.lastId ? "/chatts?after=" + encodeURIComponent(feed.lastId) : "/chatts?limit=" + FIRST_LOAD;
  let chatts;
  try {
    chatts = (await api("GET", path)).chatts;
  } catch (err) {
    if (err.status === 422 && feed.lastId) {
      // The chatt we were reading after is gone (deleted): start again from the newest.
      feed.lastId = null;
      list.replaceChildren();
      return refreshChatts();
    }
    throw err;
  }
  if (chatts.length) {
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.append(...chatts.map(renderChatt));
    feed.lastId = chatts[chatts.length - 1].id;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }
  showEmpty();
}

function schedulePoll() {
  clearTimeout(feed.timer);
  feed.timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  if (feed.polling) return;
  feed.polling = true;
  try {
    if (!document.hidden) await refreshChatts();
  } catch (err) {
    say("Could not show the newest chatts: " + err.message, true);
  } finally {
    feed.polling = false;
    schedulePoll();
  }
}

async function postChatt(event) {
  event.preventDefault();
  const form = event.target;
  const { username, message } = formValues(form);
  try {
    if (state.user) {
      await api("POST", "/postauth/", { message });
    } else {
      if (!username) throw new ApiError(0, "Type a name to post under, or sign in.");
      await api("POST", "/postchatt/", { username, message });
    }
    $("post-message").value = "";
    say("Posted.");
    await poll();
  } catch (err) {
    say("Could not post: " + err.message, true);
  }
}
