// The account section (ways to sign in, export, deletion) and, for admins, the users table. Plain JavaScript on
// app.js's helpers ($, api, say, state, setToken, loadUser, showSignedIn, formValues, loadScript) and step-up.js's
// withStepUp (a change that needs a recent sign-in asks for one, then goes ahead); no build step.
"use strict";

const IDENTITY_NAMES = { password: "Password", google: "Google", passkey: "Passkey" };
const USERS_PAGE = 20;
const ROLE_NAMES = ["user", "moderator", "admin"];

const account = { googleClientId: null, usersCursor: null };

function button(text, onClick, className = "") {
  const el = document.createElement("button");
  el.type = "button";
  el.textContent = text;
  if (className) el.className = className;
  el.addEventListener("click", onClick);
  return el;
}

// ---- ways to sign in ---------------------------------------------------------------------------------------------

function renderIdentity(identity, removable) {
  const li = document.createElement("li");
  li.dataset.kind = identity.kind;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = IDENTITY_NAMES[identity.kind] || identity.kind;
  const detail = document.createElement("span");
  detail.className = "details";
  const names = { password: identity.username, google: identity.email || identity.sub, passkey: identity.name };
  detail.textContent = names[identity.kind] || "";
  li.append(kind, detail);
  if (removable) li.append(button("Remove", () => removeIdentity(identity), "remove"));
  return li;
}

async function loadIdentities() {
  try {
    const { identities } = await api("GET", "/identities");
    $("identities-list").replaceChildren(...identities.map((i) => renderIdentity(i, identities.length > 1)));
    $("add-password-form").hidden = identities.some((i) => i.kind === "password");
  } catch (err) {
    say("Could not list your ways to sign in: " + err.message, true);
  }
}

async function removeIdentity(identity) {
  const query = identity.id ? "?id=" + encodeURIComponent(identity.id) : "";
  try {
    await withStepUp(() => api("DELETE", "/identities/" + identity.kind + query));
    say("Removed " + (IDENTITY_NAMES[identity.kind] || identity.kind).toLowerCase() + " sign-in.");
  } catch (err) {
    say("Could not remove it: " + err.message, true);
  }
  await loadIdentities();
}

async function onAddPassword(event) {
  event.preventDefault();
  const { username, password } = formValues(event.target);
  try {
    await withStepUp(() => api("POST", "/identities/password", { username, password }));
    event.target.reset();
    say("You can now also sign in as " + username + " with your password.");
    await loadUser(); // the account's name is the login name now
  } catch (err) {
    say("Could not add a password: " + err.message, true);
  }
}

// Called by the Google button while signed in (app.js's callback in Google Identity Services mode, or ours).
async function linkGoogle(clientId, idToken) {
  try {
    const linked = await withStepUp(() => api("POST", "/identities/google", { clientID: clientId, idToken }));
    say("Linked the Google account " + (linked.email || linked.sub) + ".");
  } catch (err) {
    say("Could not link that Google account: " + err.message, true);
  }
  await loadIdentities();
}

function showLinkGoogle() {
  const gis = window.google && window.google.accounts && window.google.accounts.id;
  if (!account.googleClientId || !gis) return;
  $("link-google").hidden = false;
  gis.renderButton($("link-google-button"), { theme: "outline", size: "medium", text: "continue_with" });
}

// With Google web sign-in on, the page has no Google script for signing in; linking loads it, for this alone.
async function setUpLinking() {
  let config;
  try {
    config = await api("GET", "/config.json");
  } catch {
    return;
  }
  const clientId = (config.googleClientIds || [])[0];
  if (!clientId || !config.googleLoginUrl) return; // no Google, or app.js's button already serves (chatter:google)
  try {
    await loadScript("https://accounts.google.com/gsi/client");
  } catch {
    return;
  }
  const callback = ({ credential }) => linkGoogle(clientId, credential);
  window.google.accounts.id.initialize({ client_id: clientId, callback });
  account.googleClientId = clientId;
  if (state.user) showLinkGoogle();
}

// ---- your data ---------------------------------------------------------------------------------------------------

async function onExport() {
  try {
    const data = await api("GET", "/me/export");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    link.download = "chatterd-export.json";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    say("Downloaded everything kept about you.");
  } catch (err) {
    say("Could not export your data: " + err.message, true);
  }
}

async function onDeleteAccount(event) {
  event.preventDefault();
  try {
    await withStepUp(() => api("DELETE", "/me"));
  } catch (err) {
    say("Could not delete your account: " + err.message, true);
    return;
  }
  event.target.reset();
  setToken(null);
  state.user = null;
  showSignedIn();
  say("Your account is deleted; your chatts stay, under [deleted].");
}

// ---- users (admins) ----------------------------------------------------------------------------------------------

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content === null || content === undefined ? "" : String(content);
  return td;
}

function roleSelect(user) {
  const select = document.createElement("select");
  select.className = "role";
  select.setAttribute("aria-label", "Role of " + user.username);
  for (const role of ROLE_NAMES) select.append(new Option(role, role, false, role === user.role));
  select.addEventListener("change", () => setRole(user, select));
  return select;
}

function banControls(user) {
  const box = document.createElement("div");
  box.className = "ban";
  if (user.banned_until) {
    box.append(button("Lift ban", () => unban(user), "unban"));
    return box;
  }
  const until = document.createElement("input");
  until.type = "datetime-local";
  until.className = "until";
  until.setAttribute("aria-label", "Banned until (empty: no end)");
  const reason = document.createElement("input");
  reason.className = "reason";
  reason.maxLength = 500;
  reason.placeholder = "reason";
  box.append(until, reason, button("Ban", () => ban(user, until.value, reason.value), "ban-button"));
  return box;
}

function renderUser(user) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(user.id);
  const until = user.banned_until;
  const banned = until === "infinity" ? "no end" : until && new Date(until).toLocaleString();
  tr.append(cell(user.id), cell(user.username), cell(user.email), cell(roleSelect(user)), cell(banned));
  tr.append(cell(banControls(user)));
  return tr;
}

async function loadUsers(more = false) {
  const params = new URLSearchParams({ limit: String(USERS_PAGE) });
  const q = $("users-q").value.trim();
  if (q) params.set("q", q);
  if (more && account.usersCursor) params.set("cursor", account.usersCursor);
  try {
    const page = await api("GET", "/admin/users?" + params);
    const rows = page.users.map(renderUser);
    if (more) $("users-rows").append(...rows);
    else $("users-rows").replaceChildren(...rows);
    account.usersCursor = page.next_cursor;
    $("users-more").hidden = !page.next_cursor;
  } catch (err) {
    say("Could not list the users: " + err.message, true);
  }
}

async function setRole(user, select) {
  try {
    await api("PUT", "/admin/users/" + user.id + "/role", { role: select.value });
    say(user.username + " is now " + select.value + ".");
    user.role = select.value;
  } catch (err) {
    select.value = user.role;
    say("Could not change the role: " + err.message, true);
  }
}

async function ban(user, until, reason) {
  const body = {};
  if (until) body.until = new Date(until).toISOString(); // the input is local time; the API wants its offset
  if (reason) body.reason = reason;
  try {
    await api("POST", "/admin/users/" + user.id + "/ban", body);
    say("Banned " + user.username + ".");
  } catch (err) {
    say("Could not ban " + user.username + ": " + err.message, true);
  }
  await loadUsers();
}

async function unban(user) {
  try {
    await api("DELETE", "/admin/users/" + user.id + "/ban");
    say("Lifted the ban on " + user.username + ".");
  } catch (err) {
    say("Could not lift the ban: " + err.message, true);
  }
  await loadUsers();
}

// ---- start -------------------------------------------------------------------------------------------------------

document.addEventListener("chatter:user", ({ detail: user }) => {
  $("my-account").hidden = !user;
  $("admin").hidden = !(user && user.role === "admin");
  if (!user) {
    $("identities-list").replaceChildren();
    $("users-rows").replaceChildren();
    return;
  }
  loadIdentities();
  showLinkGoogle();
  if (user.role === "admin") loadUsers();
});

document.addEventListener("chatter:google", ({ detail: clientId }) => {
  account.googleClientId = clientId;
  if (state.user) showLinkGoogle();
});

document.addEventListener("DOMContentLoaded", () => {
  $("add-password-form").addEventListener("submit", onAddPassword);
  $("export-account").addEventListener("click", onExport);
  $("delete-account-form").addEventListener("submit", onDeleteAccount);
  $("users-search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadUsers();
  });
  $("users-more").addEventListener("click", () => loadUsers(true));
  setUpLinking();
});
