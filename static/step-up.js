// Step-up on the page: when a sensitive action answers "reauth_required", ask the user to prove who they are again
// (password and code, or a passkey: see passkeys.js), then do the action once more. Uses api() and $ from app.js.
"use strict";

const stepUp = { pending: null };

// Run `action` (an async function calling the API); on reauth_required, re-authenticate, then run it again once.
async function withStepUp(action) {
  try {
    return await action();
  } catch (err) {
    if (!(err instanceof ApiError && err.code === "reauth_required")) throw err;
  }
  await reauthenticate();
  return action();
}

// Show the prompt; resolves once POST /reauthenticate has succeeded, rejects when the user cancels.
function reauthenticate() {
  if (stepUp.pending) stepUp.pending.reject(new ApiError(0, "Cancelled."));
  $("reauth-form").reset();
  $("reauth-error").textContent = "";
  return new Promise((resolve, reject) => {
    stepUp.pending = { resolve, reject };
    $("reauth").showModal();
  });
}

// The prompt's end: `error` null when the user proved who they are, else why the action will not run.
function finishStepUp(error) {
  const pending = stepUp.pending;
  stepUp.pending = null;
  $("reauth").close();
  if (!pending) return;
  if (error) pending.reject(error);
  else pending.resolve();
}

// Prove who you are with `body` ({password, otp} or {credential}); the prompt stays open, saying why, on failure.
async function sendReauthentication(body) {
  try {
    await api("POST", "/reauthenticate", body);
    finishStepUp(null);
  } catch (err) {
    $("reauth-error").textContent = err.message;
  }
}

async function onReauthSubmit(event) {
  event.preventDefault();
  const { password, otp } = formValues(event.target);
  if (!password) {
    $("reauth-error").textContent = "Enter your password, or use a passkey.";
    return;
  }
  await sendReauthentication(otp ? { password, otp } : { password });
}

document.addEventListener("DOMContentLoaded", () => {
  $("reauth-form").addEventListener("submit", onReauthSubmit);
  $("reauth-cancel").addEventListener("click", () => finishStepUp(new ApiError(0, "Cancelled.")));
  $("reauth").addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape: the same as Cancel
    finishStepUp(new ApiError(0, "Cancelled."));
  });
});
