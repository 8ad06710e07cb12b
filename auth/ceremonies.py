"""WebAuthn ceremonies with py_webauthn: the options a client needs, and checking what its authenticator answered."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidJSONStructure, WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from core.errors import NotFound
from core.keys import settings_key
from core.origins import is_loopback, own_origin
from models.records import PasskeyDescriptor

RP_NAME = "chatter"
CHALLENGE_BYTES = 32
CHALLENGE_LIFETIME = 300  # seconds: the contract's five minutes
CEREMONY_TIMEOUT_MS = 300_000  # what the client is told it has: the challenge's lifetime
# ES256 (EC P-256) and EdDSA (Ed25519): what platform authenticators and security keys make; no RSA.
ALGORITHMS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA]
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn's bound on a credential id
NOT_CONFIGURED = (
    "Passkeys are served at this address only once PUBLIC_URL (or WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS) is set on the "
    "server; without it, only on localhost."
)


class MalformedCredential(Exception):
    """What the client sent is not a PublicKeyCredential in its JSON form (a 422)."""


class CeremonyFailed(Exception):
    """The authenticator's answer does not hold: challenge, origin, RP ID, signature, counter, ... (a 401)."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who passkeys are for (the RP ID, a domain) and the origins their ceremonies may come from."""

    id: str
    origins: tuple[str, ...]


def relying_party(request: web.Request) -> RelyingParty:
    """The configured relying party; without one, this server as reached on a loopback host (local development)."""
    settings = request.app[settings_key]
    if settings.passkey_rp_id is not None:
        return RelyingParty(settings.passkey_rp_id, settings.passkey_origins)
    # The Host header is the client's to choose: it names the relying party only where no one else can reach.
    origin = own_origin(request)
    host = urlsplit(origin).hostname if origin else None
    if origin is None or host is None or not is_loopback(host):
        raise NotFound(NOT_CONFIGURED)
    return RelyingParty(host, (origin,))


def new_challenge() -> bytes:
    """A fresh random challenge."""
    return secrets.token_bytes(CHALLENGE_BYTES)


def new_user_handle() -> bytes:
    """A fresh random user handle (WebAuthn's user.id): it says nothing about the account."""
    return secrets.token_bytes(32)


def _descriptors(passkeys: list[PasskeyDescriptor]) -> list[PublicKeyCredentialDescriptor]:
    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=passkey.credential_id,
            transports=[AuthenticatorTransport(t) for t in passkey.transports if t in known] or None,
        )
        for passkey in passkeys
    ]


def registration_options(
    rp: RelyingParty, *, username: str, handle: bytes, challenge: bytes, existing: list[PasskeyDescriptor]
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptionsJSON: a discoverable credential preferred, user verification preferred."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_name=username,
        user_id=handle,
        user_display_name=username,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
        supported_pub_key_algs=ALGORITHMS,
    )
    parsed: dict[str, Any] = orjson.loads(options_to_json(options))
    return parsed


def authentication_options(rp: RelyingParty, *, challenge: bytes, allowed: list[PasskeyDescriptor]) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON; with no `allowed` credentials, any discoverable one of this RP answers."""
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=_descriptors(allowed),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    parsed: dict[str, Any] = orjson.loads(options_to_json(options))
    return parsed


def _challenge_of(client_data_json: bytes) -> bytes:
    """The challenge the client data says was signed; CeremonyFailed when the client data is not readable."""
    try:
        client_data = parse_client_data_json(client_data_json)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise CeremonyFailed("The client data is not readable.") from exc
    if client_data.cross_origin:
        raise CeremonyFailed("The ceremony ran in a frame of another site.")
    return client_data.challenge


Parsed = TypeVar("Parsed", RegistrationCredential, AuthenticationCredential)


def _parse(parser: Callable[[dict[str, Any]], Parsed], credential: dict[str, Any]) -> tuple[Parsed, bytes]:
    """A credential in its JSON form, parsed, and the challenge it answers."""
    try:
        parsed = parser(credential)
    except InvalidJSONStructure as exc:
        raise MalformedCredential(str(exc)) from exc
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise CeremonyFailed("The credential could not be read.") from exc
    if len(parsed.raw_id) > MAX_CREDENTIAL_ID_BYTES:
        raise CeremonyFailed("The credential id is too long.")
    return parsed, _challenge_of(parsed.response.client_data_json)


def parse_registration(credential: dict[str, Any]) -> tuple[RegistrationCredential, bytes]:
    """A RegistrationResponseJSON, parsed, and the challenge it answers."""
    return _parse(parse_registration_credential_json, credential)


def parse_assertion(credential: dict[str, Any]) -> tuple[AuthenticationCredential, bytes]:
    """An AuthenticationResponseJSON, parsed, and the challenge it answers."""
    return _parse(parse_authentication_credential_json, credential)


def verify_registration(rp: RelyingParty, credential: RegistrationCredential, challenge: bytes) -> VerifiedRegistration:
    """Check a new credential: challenge, origin, RP ID, algorithm (some attestations are CPU-bound: off the loop)."""
    try:
        return verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            supported_pub_key_algs=ALGORITHMS,
        )
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise CeremonyFailed(str(exc)) from exc


def verify_assertion(
    rp: RelyingParty, credential: AuthenticationCredential, challenge: bytes, *, public_key: bytes, sign_count: int
) -> VerifiedAuthentication:
    """Check an assertion: challenge, origin, RP ID, user presence, signature, and a counter that moved forward."""
    try:
        return verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
        )
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise CeremonyFailed(str(exc)) from exc


def transports_of(credential: RegistrationCredential) -> list[str]:
    """How the new credential's authenticator says it can be reached (hints for later options)."""
    return [transport.value for transport in credential.response.transports or []]
