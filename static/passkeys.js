// Passkeys on the page: sign in with one, add one, list and delete them, and prove who you are with one at a
// step-up. Options and answers are WebAuthn's JSON forms, which the browser parses and writes itself. Uses api(), $,
// say(), setToken() and loadUser() from app.js, and withStepUp() and sendReauthentication() from step-up.js.
"use strict";

const passkeysSupported = () =>
  window.isSecureContext &&
  typeof window.PublicKeyCredential === "function" &&
  typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
  typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";

// An assertion from one of this site's passkeys: of `username`'s, or (without one) any the authenticator keeps.
async function passkeyAssertion(username) {
  const options = await api("POST", "/passkeys/login/options", username ? { username } : {});
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
  });
  return credential.toJSON();
}

// The browser's refusals (the user closed the prompt, no passkey here) say so in words of their own.
function ceremonyMessage(err) {
  if (err instanceof ApiError) return err.message;
  if (err && err.name === "NotAllowedError") return "the passkey prompt was closed, or no passkey answered";
  if (err && err.name === "InvalidStateError") return "this authenticator already has a passkey for your account";
  return (err && err.message) || String(err);
}

async function onPasskeyLogin() {
  try {
    const credential = await passkeyAssertion(null);
    setToken(null);
    const data = await api("POST", "/passkeys/login", { credential });
    setToken(data.token);
    await loadUser();
    say("Signed in with a passkey as " + state.user.username + ".");
  } catch (err) {
    say("Could not sign in with a passkey: " + ceremonyMessage(err), true);
  }
}

function renderPasskey(passkey) {
  const li = document.createElement("li");
  li.dataset.id = passkey.id;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = passkey.name;
  const details = document.createElement("span");
  details.className = "details";
  const used = passkey.last_used_at ? "last used " + new Date(passkey.last_used_at).toLocaleString() : "never used";
  details.textContent = "added " + new Date(passkey.created_at).toLocaleString() + " · " + used;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "delete";
  button.textContent = "Delete";
  button.addEventListener("click", () => deletePasskey(passkey));
  li.append(name, details, button);
  return li;
}

async function loadPasskeys() {
  try {
    const { passkeys } = await api("GET", "/passkeys");
    $("passkeys-list").replaceChildren(...passkeys.map(renderPasskey));
  } catch (err) {
    say("Could not list your passkeys: " + err.message, true);
  }
}

async function onAddPasskey(event) {
  event.preventDefault();
  const form = event.target;
  const { name } = formValues(form);
  try {
    await withStepUp(async () => {
      const options = await api("POST", "/passkeys/register/options");
      const credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
      });
      await api("POST", "/passkeys/register", name ? { credential: credential.toJSON(), name } : {
        credential: credential.toJSON(),
      });
    });
    form.reset();
    say("Passkey added: next time, sign in with it.");
  } catch (err) {
    say("Could not add a passkey: " + ceremonyMessage(err), true);
  }
  await loadPasskeys();
}

async function deletePasskey(passkey) {
  try {
    await withStepUp(() => api("DELETE", "/passkeys/" + encodeURIComponent(passkey.id)));
    say("Passkey " + passkey.name + " deleted.");
  } catch (err) {
    say("Could not delete the passkey: " + err.message, true);
  }
  await loadPasskeys();
}

async function onReauthPasskey() {
  try {
    // Any passkey this authenticator keeps for the site: the server takes only the caller's.
    await sendReauthentication({ credential: await passkeyAssertion(null) });
  } catch (err) {
    $("reauth-error").textContent = "Could not use a passkey: " + ceremonyMessage(err);
  }
}

function followSignedIn(event) {
  const signedIn = event.detail.user !== null;
  const supported = passkeysSupported();
  $("passkey-signin").hidden = signedIn || !supported;
  $("passkeys").hidden = !signedIn;
  $("passkeys-unsupported").hidden = supported;
  $("passkey-add-form").hidden = !supported;
  $("reauth-passkey").hidden = !supported;
  if (signedIn) loadPasskeys();
  else $("passkeys-list").replaceChildren();
}

document.addEventListener("chatter:signed-in", followSignedIn);
document.addEventListener("DOMContentLoaded", () => {
  $("passkey-login").addEventListener("click", onPasskeyLogin);
  $("passkey-add-form").addEventListener("submit", onAddPasskey);
  $("reauth-passkey").addEventListener("click", onReauthPasskey);
});
