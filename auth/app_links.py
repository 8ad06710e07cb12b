"""What the site publishes so that its native apps may use its passkeys: Android's asset links, Apple's association."""

from __future__ import annotations

from typing import Any

from settings import Settings

# Android Credential Manager offers an app the site's passkeys when the site grants it this relation.
GET_LOGIN_CREDS = "delegate_permission/common.get_login_creds"


def asset_links(settings: Settings) -> list[dict[str, Any]]:
    """/.well-known/assetlinks.json: each Android app of WEBAUTHN_ANDROID_APPS with its signing certificates."""
    fingerprints: dict[str, list[str]] = {}
    for package, fingerprint in settings.android_apps:
        fingerprints.setdefault(package, []).append(fingerprint)
    return [
        {
            "relation": [GET_LOGIN_CREDS],
            "target": {"namespace": "android_app", "package_name": package, "sha256_cert_fingerprints": prints},
        }
        for package, prints in fingerprints.items()
    ]


def apple_app_site_association(settings: Settings) -> dict[str, Any]:
    """/.well-known/apple-app-site-association: the apps of WEBAUTHN_APPLE_APP_IDS that share the site's passkeys."""
    return {"webcredentials": {"apps": list(settings.webauthn_apple_app_ids)}}
