"""The web page at /: its HTML, the little configuration it reads, the caller's account, QR codes for TOTP set-up."""

from __future__ import annotations

import asyncio
import io

import qrcode
import qrcode.image.svg
from aiohttp import web
from qrcode.exceptions import DataOverflowError

import models
from core.bodies import json_response, parse, read_body
from core.errors import Unprocessable
from core.headers import set_page_headers
from core.keys import credential_key, db_key, settings_key, user_key
from core.shapes import OtpauthUri
from middlewares import login_required, reads_caller
from settings import STATIC_DIR

# Google's sign-in script is the only third party the page may load, and only from where Google serves it.
GSI = "https://accounts.google.com/gsi/"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        f"script-src 'self' {GSI}client",
        f"style-src 'self' {GSI}style",
        f"frame-src {GSI}",
        f"connect-src 'self' {GSI}",
        "img-src 'self' blob: data:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


async def index(request: web.Request) -> web.FileResponse:
    """GET /: the chatter page (plain HTML, CSS and JS from static/)."""
    response = web.FileResponse(STATIC_DIR / "index.html")
    set_page_headers(response, CONTENT_SECURITY_POLICY)
    return response


async def page_config(request: web.Request) -> web.Response:
    """GET /config.json: the Google client IDs the page may offer sign-in with, and the web sign-in link if it is on."""
    settings = request.app[settings_key]
    return json_response(
        {
            "googleClientIds": list(settings.google_client_ids),
            "googleLoginUrl": "/auth/google/login" if settings.google_client_secret else None,
        }
    )


@reads_caller
async def account(request: web.Request) -> web.Response:
    """GET /account: whether the caller is signed in (a 200 either way, so an anonymous visit is no 401), and then how
    this session signed in and how two-factor sign-in stands: what the page shows and offers."""
    user, credential = request[user_key], request[credential_key]
    if user is None or credential is None:
        return json_response({"signed_in": False})
    security = await models.account_security(request.app[db_key], user.id, credential.session_id)
    if security is None:  # deleted since the credential was checked
        return json_response({"signed_in": False})
    return json_response(
        {
            "signed_in": True,
            "sign_in_kind": security.session_kind,
            "has_password": security.has_password,
            "totp_enabled": security.totp_enabled,
            "recovery_codes_left": security.recovery_codes_left,
        }
    )


def qr_svg(data: str) -> bytes:
    """`data` as a QR code, an SVG document (CPU-bound: call it off the event loop)."""
    qr = qrcode.QRCode(image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    # One byte-mode segment: qrcode 8.2's mixed-mode packing fails on long runs of digits ("ValueError: glog(0)",
    # lincolnloop/python-qrcode#330), and an ASCII URI fits in bytes anyway.
    qr.add_data(data, optimize=0)
    out = io.BytesIO()
    qr.make_image().save(out)
    return out.getvalue()


@login_required
async def totp_qr(request: web.Request) -> web.Response:
    """POST /totp/qr {"uri"} (signed in): the otpauth:// URI as an SVG QR code; POST keeps the secret out of URLs."""
    # An ASCII URI of at most 1024 characters (core.shapes): as many bytes, well under what one code holds.
    uri = parse(OtpauthUri, await read_body(request)).uri
    try:
        # Drawing takes tens of milliseconds of pure Python: in a thread, so the loop keeps serving meanwhile.
        svg = await asyncio.to_thread(qr_svg, uri)
    except DataOverflowError:
        raise Unprocessable("'uri' is too long for a QR code.") from None
    response = web.Response(body=svg, content_type="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response
