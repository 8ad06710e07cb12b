// The chatter page: plain JavaScript against the HTTP contract (see /docs). No build step, no framework.
"use strict";

const TOKEN_KEY = "chatterd.token";

// user: GET /get-user's; account: GET /account's (signed in or not, and how; two-factor sign-in)
const state = { token: sessionStorage.getItem(TOKEN_KEY), user: null, account: null };

const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.status = status;
    this.code = code; // the contract's "error" code, where it gives one (otp_required, reauth_required, ...)
  }
}

// One JSON request; the JWT (when signed in) goes in the Authorization header, never in a URL. Signed in by the
// login cookie alone (Google web sign-in), writes must show our origin (Origin or Referer), which the page's
// no-referrer policy lets browsers withhold: so same-origin requests get their own same-origin referrer policy.
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      referrerPolicy: "same-origin",
    });
  } catch {
    throw new ApiError(0, UNREACHABLE);
  }
  const isJson = (resp.headers.get("Content-Type") || "").includes("application/json");
  const data = isJson ? await resp.json() : null;
  if (!resp.ok) throw new ApiError(resp.status, plainMessage(resp, data), data && data.error);
  return data;
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// ---- accounts ----------------------------------------------------------------------------------------------------

function showSignedIn() {
  const signedIn = state.user !== null;
  $("whoami").hidden = !signedIn;
  $("account").hidden = signedIn;
  $("totp").hidden = !signedIn;
  $("security").hidden = !signedIn;
  $("sessions").hidden = !signedIn;
  $("post-username-label").hidden = signedIn;
  // The page's other parts (passkeys) follow the signed-in state too.
  document.dispatchEvent(new CustomEvent("chatter:signed-in", { detail: { user: state.user } }));
  if (signedIn) {
    $("whoami-name").textContent = state.user.username;
    $("whoami-role").textContent = state.user.role === "user" ? "" : "(" + state.user.role + ")";
    $("email-address").textContent = state.user.email || "none";
    $("email-state").textContent = state.user.email ? (state.user.email_verified ? "(verified)" : "(not verified)") : "";
    $("verify-form").hidden = !state.user.email || state.user.email_verified;
    loadSessions();
  } else {
    $("sessions-list").replaceChildren();
  }
  document.dispatchEvent(new CustomEvent("chatter:user", { detail: state.user })); // account.js follows it
}

function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Who we are: by the JWT this tab keeps, else by the login cookie (which Google web sign-in sets). GET /account
// answers a visitor who is not signed in too: no 401 to find that out; /get-user is asked only when signed in.
async function loadUser() {
  state.user = null;
  try {
    state.account = await api("GET", "/account");
    if (state.account.signed_in) state.user = (await api("GET", "/get-user")).user;
    else setToken(null);
  } catch (err) {
    setToken(null); // expired or revoked: sign in again
    if (err.status !== 401) say("Could not check who you are: " + err.message, true);
  }
  showSignedIn();
}

async function login(username, password, otp) {
  const body = { username, password };
  if (otp) body.otp = otp;
  setToken(null);
  const data = await api("POST", "/login", body);
  setToken(data.token);
  await loadUser();
}

async function onLogin(event) {
  event.preventDefault();
  const { username, password, otp } = formValues(event.target);
  try {
    await login(username, password, otp);
    event.target.reset();
    say("Signed in as " + state.user.username + ".");
  } catch (err) {
    say("Could not sign in: " + err.message, true);
  }
}

async function onRegister(event) {
  event.preventDefault();
  const { username, password, email } = formValues(event.target);
  try {
    setToken(null);
    await api("POST", "/register", email ? { username, password, email } : { username, password });
    await login(username, password);
    event.target.reset();
    const mailed = email ? " A code is on its way to " + email + ": enter it under “Verify your email”." : "";
    say("Registered and signed in as " + state.user.username + "." + mailed);
  } catch (err) {
    say("Could not register: " + err.message, true);
  }
}

// ---- email and password ------------------------------------------------------------------------------------------

// An account is named by its email address or its username; an "@" tells which.
function accountNamed(text) {
  return text.includes("@") ? { email: text } : { username: text };
}

async function onForgot(event) {
  event.preventDefault();
  const { account } = formValues(event.target);
  try {
    await api("POST", "/password/forgot", accountNamed(account));
    $("reset-form").elements.account.value = account;
    say("If that account has a verified email address, a code is on its way to it.");
  } catch (err) {
    say("Could not ask for a code: " + err.message, true);
  }
}

async function onReset(event) {
  event.preventDefault();
  const { account, code, password } = formValues(event.target);
  try {
    await api("POST", "/password/reset", { ...accountNamed(account), code, password });
    event.target.reset();
    say("Your password was reset: sign in with the new one.");
  } catch (err) {
    say("Could not reset the password: " + err.message, true);
  }
}

async function onSetEmail(event) {
  event.preventDefault();
  const { email } = formValues(event.target);
  try {
    await withStepUp(() => api("POST", "/email", { email }));
    event.target.reset();
    await loadUser();
    say("A code is on its way to " + email + ".");
  } catch (err) {
    say("Could not set the email address: " + err.message, true);
  }
}

async function onVerify(event) {
  event.preventDefault();
  const { code } = formValues(event.target);
  try {
    await api("POST", "/email/verify", { code });
    event.target.reset();
    await loadUser();
    say("Your email address is verified.");
  } catch (err) {
    say("Could not verify the email address: " + err.message, true);
  }
}

async function onChangePassword(event) {
  event.preventDefault();
  const { current_password, password } = formValues(event.target);
  try {
    await withStepUp(() => api("POST", "/password/change", { current_password, password }));
    event.target.reset();
    say("Your password was changed.");
  } catch (err) {
    say("Could not change the password: " + err.message, true);
  }
}

async function onLogout() {
  try {
    await api("POST", "/logout");
    say("Logged out.");
  } catch (err) {
    if (err.status !== 401) say("Could not log out: " + err.message, true);
  }
  setToken(null);
  state.user = null;
  showSignedIn();
}

// ---- where you're signed in ---------------------------------------------------------------------------------------

const KINDS = { password: "password", google: "Google (app)", google_web: "Google", passkey: "passkey" };

function renderSession(session) {
  const li = document.createElement("li");
  li.dataset.id = session.id;
  const device = document.createElement("span");
  device.className = "device";
  device.textContent = session.device || "Unknown device"; // text, never HTML: the user agent is the client's
  const details = document.createElement("span");
  details.className = "details";
  const seen = new Date(session.last_seen_at).toLocaleString();
  details.textContent = [KINDS[session.kind] || session.kind, session.ip, "last seen " + seen].filter(Boolean).join(" · ");
  li.append(device, details);
  if (session.current) {
    const mark = document.createElement("span");
    mark.className = "this-device";
    mark.textContent = "This device";
    li.append(mark);
  } else {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sign-out";
    button.textContent = "Sign out";
    button.addEventListener("click", () => signOutSession(session.id, session.device));
    li.append(button);
  }
  return li;
}

async function loadSessions() {
  try {
    const { sessions } = await api("GET", "/sessions");
    $("sessions-list").replaceChildren(...sessions.map(renderSession));
    $("sessions-revoke-others").hidden = !sessions.some((session) => !session.current);
  } catch (err) {
    say("Could not list where you are signed in: " + err.message, true);
  }
}

async function signOutSession(id, device) {
  try {
    await api("DELETE", "/sessions/" + encodeURIComponent(id));
    say("Signed out " + (device || "that device") + ".");
  } catch (err) {
    say("Could not sign that device out: " + err.message, true);
  }
  await loadSessions();
}

async function onRevokeOthers() {
  try {
    await api("POST", "/sessions/revoke-others");
    say("Signed out everywhere else.");
  } catch (err) {
    say("Could not sign out the other devices: " + err.message, true);
  }
  await loadSessions();
}

// ---- two-factor --------------------------------------------------------------------------------------------------

async function onTotpSetup() {
  try {
    const { secret, uri } = await api("POST", "/totp/setup");
    $("totp-secret").textContent = secret;
    $("totp-uri").textContent = uri;
    // The QR code is drawn by the server from a POSTed URI, so the secret never appears in a URL or a log. It is
    // drawn only for a signed-in caller: the same credentials as api() sends.
    const headers = { "Content-Type": "application/json" };
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    const resp = await fetch("/totp/qr", {
      method: "POST",
      headers,
      body: JSON.stringify({ uri }),
      credentials: "same-origin",
      referrerPolicy: "same-origin",
    });
    if (resp.ok) $("totp-qr").src = URL.createObjectURL(await resp.blob());
    $("totp-details").hidden = false;
  } catch (err) {
    say("Could not start two-factor set-up: " + err.message, true);
  }
}

async function onTotpEnable(event) {
  event.preventDefault();
  const { otp } = formValues(event.target);
  try {
    await api("POST", "/totp/enable", { otp });
    $("totp-details").hidden = true;
    event.target.reset();
    await loadUser(); // the account shows it on
    say("Two-factor sign-in is on: you will be asked for a code when you sign in.");
  } catch (err) {
    say("Could not turn on two-factor sign-in: " + err.message, true);
  }
}

// ---- Google ------------------------------------------------------------------------------------------------------

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.onload = resolve;
    script.onerror = () => reject(new Error("could not load " + src));
    document.head.append(script);
  });
}

async function setUpGoogle() {
  let config;
  try {
    config = await api("GET", "/config.json");
  } catch {
    return;
  }
  if (config.googleLoginUrl) {
    // Google web sign-in (the redirect flow) is on: a plain link, no third-party script on the page.
    $("google-web-link").href = config.googleLoginUrl;
    $("google-web").hidden = false;
    return;
  }
  const clientId = (config.googleClientIds || [])[0];
  if (!clientId) return; // no GOOGLE_CLIENT_IDS configured: no Google button
  $("google").hidden = false;
  try {
    await loadScript("https://accounts.google.com/gsi/client");
  } catch (err) {
    say("Google sign-in is unavailable: " + err.message, true);
    return;
  }
  window.google.accounts.id.initialize({
    client_id: clientId,
    callback: async ({ credential }) => {
      if (state.user) return linkGoogle(clientId, credential); // signed in: the button links (account.js)
      try {
        setToken(null);
        const data = await api("POST", "/adduser/", { clientID: clientId, idToken: credential });
        setToken(data.token);
        await loadUser();
        say("Signed in with Google as " + data.username + ".");
      } catch (err) {
        say("Google sign-in failed: " + err.message, true);
      }
    },
  });
  window.google.accounts.id.renderButton($("google-button"), { theme: "outline", size: "large" });
  document.dispatchEvent(new CustomEvent("chatter:google", { detail: clientId }));
}

// Back from Google web sign-in without signing in (the user cancelled, say): the server said why in the fragment.
function showGoogleError() {
  const code = new URLSearchParams(location.hash.slice(1)).get("google-error");
  if (!code) return;
  say("Google sign-in did not complete: " + code, true);
  history.replaceState(null, "", location.pathname + location.search);
}

// ---- start -------------------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("post-form").addEventListener("submit", postChatt);
  $("login-form").addEventListener("submit", onLogin);
  $("register-form").addEventListener("submit", onRegister);
  $("forgot-form").addEventListener("submit", onForgot);
  $("reset-form").addEventListener("submit", onReset);
  $("email-form").addEventListener("submit", onSetEmail);
  $("verify-form").addEventListener("submit", onVerify);
  $("change-password-form").addEventListener("submit", onChangePassword);
  $("logout").addEventListener("click", onLogout);
  $("totp-setup").addEventListener("click", onTotpSetup);
  $("sessions-revoke-others").addEventListener("click", onRevokeOthers);
  $("totp-enable-form").addEventListener("submit", onTotpEnable);
  document.addEventListener("visibilitychange", () => document.hidden || poll());
  showGoogleError();
  loadUser();
  setUpGoogle();
  poll();
});
