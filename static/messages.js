// What the server answers, in words for the person at the page. The API's messages are written for programs and
// their authors ("send it as 'otp'", "/totp/setup"); those the page can meet are said here the way a person needs
// them. Any other message is shown as the server wrote it. Used by api() in app.js.
"use strict";

const UNREACHABLE = "Could not reach the server: check your connection, then try again.";

const SIGNED_OUT = "Your sign-in has ended: sign in again.";
const WRONG_CODE =
  "That code is wrong, or was used already (each code works once): type the newest one your authenticator app " +
  "shows, or a recovery code you have not used.";

// The server's message → the page's.
const PLAIN = {
  "Sign-in required.": SIGNED_OUT,
  "The credentials are invalid, expired or revoked.": SIGNED_OUT,
  "The chatterID is unknown or expired.": SIGNED_OUT,
  "A one-time code is needed: send it as 'otp'.":
    "This account has two-factor sign-in on: enter the one-time code from your authenticator app too.",
  "A valid one-time code is needed: that 'otp' is wrong or was already used.": WRONG_CODE,
  "That one-time code is not valid.": WRONG_CODE,
  "That one-time code is not valid for the secret from /totp/setup.":
    "That code does not match: type the code your authenticator app shows now for this account.",
  "Call /totp/setup first.": "Start again with “Turn on two-factor sign-in”.",
  "TOTP is already enabled.": "Two-factor sign-in is already on.",
  "TOTP is already enabled, or this account signs in with Google.":
    "Two-factor sign-in is already on, or this account signs in with Google (which guards it instead).",
  "TOTP is not enabled.": "Two-factor sign-in is already off.",
  "Turn TOTP on first.": "Turn on two-factor sign-in first.",
  "Anonymous posting is turned off; sign in and use /postauth/.":
    "Sign in to post: this server takes chatts only from signed-in users.",
  "Cross-site request refused: send the token in the Authorization header instead.":
    "Refused, to keep your account safe: reload this page, then try again.",
  "The database refused this chatt: it breaks one of its rules.": "That chatt could not be stored: try other words.",
};

// A field named in a message ("'otp' must be ...") as the page's forms call it.
const FIELDS = {
  username: "username",
  password: "password",
  message: "message",
  otp: "code",
  name: "name",
};

function waitWords(seconds) {
  if (!(seconds > 0)) return "a moment";
  if (seconds < 90) return Math.ceil(seconds) + " seconds";
  return Math.ceil(seconds / 60) + " minutes";
}

// The message to show for an answer that is not a success: `resp` the fetch Response, `data` its JSON body (or null).
function plainMessage(resp, data) {
  const message = (data && data.message) || "";
  if (resp.status === 429) {
    return "Too many tries: wait " + waitWords(Number(resp.headers.get("Retry-After"))) + ", then try again.";
  }
  if (resp.status === 503) return "The server cannot do that right now: try again in a moment.";
  if (resp.status === 413) return "That is too long to send.";
  if (resp.status >= 500 || !message) return "Something went wrong on the server: try again.";
  if (PLAIN[message]) return PLAIN[message];
  const field = /^'(\w+)' (.+)$/.exec(message); // "'message' must be 1 to 1000 characters long."
  if (field && FIELDS[field[1]]) return "The " + FIELDS[field[1]] + " " + field[2];
  return message;
}
