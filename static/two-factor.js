// How the signed-in account signs in, as GET /account says: the kind of this sign-in, and two-factor sign-in (TOTP),
// on or off, offered only to an account with a password (a Google account's sign-in is Google's to guard). With it
// on: new recovery codes, and turning it off, each after confirming it's you when the sign-in is not recent. Uses
// api(), $, say(), formValues() and state from app.js, and withStepUp() from step-up.js.
"use strict";

const SIGNED_IN_WITH = {
  password: "with a password",
  google: "with Google",
  google_web: "with Google",
  passkey: "with a passkey",
};

function recoveryWords(left) {
  if (left === 0) return "You have no recovery codes: get some, in case you lose your phone.";
  if (left === 1) return "You have 1 unused recovery code left.";
  return "You have " + left + " unused recovery codes.";
}

function showTwoFactor() {
  const account = state.user ? state.account : null;
  $("whoami-kind").textContent = (account && SIGNED_IN_WITH[account.sign_in_kind]) || "";
  const offered = Boolean(account && account.has_password);
  $("totp").hidden = !offered;
  if (!offered) {
    $("recovery-codes").hidden = true;
    $("recovery-codes-list").replaceChildren();
    return;
  }
  const on = account.totp_enabled;
  $("totp-state").textContent = on
    ? "On: signing in asks for your password and a code from your authenticator app."
    : "Off: signing in asks only for your password. Turn it on, so that a stolen password is not enough.";
  $("totp-state").className = on ? "state on" : "state off";
  $("totp-setup").hidden = on;
  $("totp-on").hidden = !on;
  if (on) {
    $("totp-details").hidden = true;
    $("recovery-left").textContent = recoveryWords(account.recovery_codes_left);
  }
}

async function refreshAccount() {
  try {
    const account = await api("GET", "/account");
    if (!account.signed_in) return loadUser(); // signed out meanwhile: the whole page follows
    state.account = account;
  } catch (err) {
    say("Could not check your account: " + err.message, true);
  }
  showTwoFactor();
}

async function onRecoveryCodes() {
  try {
    const { codes } = await withStepUp(() => api("POST", "/totp/recovery-codes"));
    $("recovery-codes-list").replaceChildren(
      ...codes.map((code) => {
        const li = document.createElement("li");
        li.textContent = code;
        return li;
      }),
    );
    $("recovery-codes").hidden = false;
    say("New recovery codes: write them down now. The old ones no longer work.");
  } catch (err) {
    say("Could not make new recovery codes: " + err.message, true);
  }
  await refreshAccount();
}

async function onTotpDisable(event) {
  event.preventDefault();
  const form = event.target;
  const { otp } = formValues(form);
  try {
    await withStepUp(() => api("POST", "/totp/disable", { otp }));
    $("recovery-codes").hidden = true;
    $("recovery-codes-list").replaceChildren();
    say("Two-factor sign-in is off: signing in asks only for your password now.");
  } catch (err) {
    say("Could not turn off two-factor sign-in: " + err.message, true);
  }
  form.reset(); // a code works once: the next try needs a new one anyway
  await refreshAccount();
}

document.addEventListener("chatter:signed-in", showTwoFactor);
document.addEventListener("DOMContentLoaded", () => {
  $("recovery-codes-new").addEventListener("click", onRecoveryCodes);
  $("totp-disable-form").addEventListener("submit", onTotpDisable);
});
