"""A short readable description of the device a session signed in from, parsed from its User-Agent with ua-parser.

The course's chatter apps send no browser's agent but their HTTP library's, and get names of their own:
- iOS: URLSession sends `<app>/<build> CFNetwork/<version> Darwin/<version>` (e.g. `swiftUIChatter/1
  CFNetwork/1568.100.1 Darwin/24.0.0`), and Alamofire `<app>/<version> (<bundle id>; build:<n>; iOS <version>)
  Alamofire/<version>`: either is "chatter iOS app". (A macOS app using URLSession sends the same form; this server's
  only such clients are the iOS apps.)
- Android: OkHttp sends `okhttp/<version>`, Volley and HttpURLConnection `Dalvik/<version> (Linux; U; Android ...)`,
  Ktor `Ktor client`: each is "chatter Android app".
Anything else is what ua-parser makes of it: "Chrome 131 on macOS", "Mobile Safari 17 on iOS", "curl 8".
"""

from __future__ import annotations

import asyncio
import re
from typing import Final

import ua_parser

# Stored and parsed at most this long: real agents are a few hundred characters, and parsing time grows with length.
MAX_USER_AGENT: Final = 512
MAX_DEVICE: Final = 100
UNKNOWN: Final = "Unknown device"
IOS_APP: Final = "chatter iOS app"
ANDROID_APP: Final = "chatter Android app"

_IOS_APP = re.compile(r"\bCFNetwork/\S+ Darwin/|\bAlamofire/")
_ANDROID_APP = re.compile(r"^(okhttp/|Dalvik/|Ktor client)", re.IGNORECASE)
# ua-parser's family names where a person knows another.
_OS_NAMES: Final = {"Mac OS X": "macOS", "Other": ""}


def clip_user_agent(user_agent: str | None) -> str:
    """The User-Agent as a session keeps it: at most MAX_USER_AGENT characters, without control characters."""
    text = "".join(ch for ch in (user_agent or "")[:MAX_USER_AGENT] if ch.isprintable())
    return text.strip()


def describe(user_agent: str) -> str:
    """What a person calls the device behind `user_agent` (CPU-bound for a new agent: see describe_async)."""
    if not user_agent:
        return UNKNOWN
    if _IOS_APP.search(user_agent):
        return IOS_APP
    if _ANDROID_APP.match(user_agent):
        return ANDROID_APP
    result = ua_parser.parse(user_agent)
    agent, system = result.user_agent, result.os
    if agent is None or agent.family == "Other":
        name = ""
    else:
        name = f"{agent.family} {agent.major}" if agent.major else agent.family
    os_name = "" if system is None else _OS_NAMES.get(system.family, system.family)
    if name and os_name:
        description = f"{name} on {os_name}"
    else:
        description = name or os_name or UNKNOWN
    return description[:MAX_DEVICE]


async def describe_async(user_agent: str) -> str:
    """`describe` off the event loop: an agent never seen before is matched against hundreds of patterns."""
    return await asyncio.to_thread(describe, user_agent)
