"""A short readable description of the device a session signed in from, parsed from its User-Agent with ua-parser.

The course's chatter apps send no browser's agent but their HTTP library's, and get names of their own:
- iOS: URLSession sends `<app>/<build> CFNetwork/<version> Darwin/<version>` (e.g. `swiftUIChatter/1
  CFNetwork/1568.100.1 Darwin/24.0.0`), and Alamofire `<app>/<version> (<bundle id>; build:<n>; iOS <version>)
  Alamofire/<version>`: either is "chatter iOS app". (A macOS app using URLSession sends the same form; this server's
  only such clients are the iOS apps.)
- Android: OkHttp sends `okhttp/<version>`, Volley and HttpURLConnection `Dalvik/<version> (Linux; U; Android ...)`,
  Ktor `Ktor client`: each is "chatter Android app".
Anything else is what ua-parser makes of it: "Chrome 131 on macOS", "Mobile Safari 17 on iOS", "curl 8".

Whether a sign-in comes from a device the user has used before (a security notice if not) is judged by its family,
the description without versions ("Chrome on macOS": an update is no new device), and the network of its address
(the /24 of an IPv4 address, the /48 of an IPv6 one: a phone's address changes within its provider's network).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
from typing import Final, NamedTuple

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


class Device(NamedTuple):
    """What a person calls a device ("Chrome 131 on macOS"), and its family without versions ("Chrome on macOS")."""

    description: str
    family: str


def identify(user_agent: str) -> Device:
    """The device behind `user_agent` (CPU-bound for a new agent: see identify_async)."""
    if not user_agent:
        return Device(UNKNOWN, UNKNOWN)
    if _IOS_APP.search(user_agent):
        return Device(IOS_APP, IOS_APP)
    if _ANDROID_APP.match(user_agent):
        return Device(ANDROID_APP, ANDROID_APP)
    result = ua_parser.parse(user_agent)
    agent, system = result.user_agent, result.os
    family = "" if agent is None or agent.family == "Other" else agent.family
    name = f"{family} {agent.major}" if family and agent is not None and agent.major else family
    os_name = "" if system is None else _OS_NAMES.get(system.family, system.family)
    return Device(_joined(name, os_name), _joined(family, os_name))


def _joined(name: str, os_name: str) -> str:
    description = f"{name} on {os_name}" if name and os_name else name or os_name or UNKNOWN
    return description[:MAX_DEVICE]


def describe(user_agent: str) -> str:
    """What a person calls the device behind `user_agent`."""
    return identify(user_agent).description


# Agents identified before, by their exact text: most sign-ins come from a few apps and browsers, and a thread hop
# per sign-in cost more than the look-up. `identify` depends on the text alone, so an entry can never be out of date.
IDENTIFIED_LIMIT = 10_000
_identified: dict[str, Device] = {}


async def identify_async(user_agent: str) -> Device:
    """`identify` off the event loop (an agent never seen before is matched against hundreds of patterns); an agent
    seen before is answered from memory."""
    device = _identified.get(user_agent)
    if device is None:
        device = await asyncio.to_thread(identify, user_agent)
        if len(_identified) >= IDENTIFIED_LIMIT:
            _identified.clear()
        _identified[user_agent] = device
    return device


@functools.lru_cache(maxsize=IDENTIFIED_LIMIT)
def network_of(address: str) -> str:
    """The network a client address belongs to, as new-device notices compare them: an IPv4 /24, an IPv6 /48 (an
    IPv4-mapped IPv6 address counts as IPv4); anything that is no IP address stands for itself. Remembered: it
    depends on the text alone, and ipaddress takes tens of µs to parse it at every sign-in."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
