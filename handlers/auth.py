"""Authentication exactly as the CareConnect backend does it (`JwtTokenProvider` and the
WebSocket handlers' `handleAuthentication`).

The key is `Keys.hmacShaKeyFor(Base64.getDecoder().decode(security.jwt.secret))`: the HMAC key
is the base64-*decoded* secret, never its text. Tokens are HS256 with `iss` (careconnect),
`sub` (the user's email), `role`, `iat` and `exp`, and no user id. The identity is the `users`
row whose email is the subject (its id, name and role); a user whose status is not ACTIVE is
refused, and so is a message whose `userId` differs from that row's id. RS256 with a public key
stays available as an option.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from handlers import aws
from handlers.settings import ConfigurationError, JwtSettings
from handlers.users import User, UserDirectory

if TYPE_CHECKING:
    from jwt.types import Options

MIN_HMAC_KEY_BYTES = 32  # Keys.hmacShaKeyFor refuses shorter keys for HS256 (WeakKeyException)
INVALID_TOKEN = "Invalid or missing token"  # the backend's words; clients may show them
USER_NOT_FOUND = "User not found"


class AuthenticationFailed(Exception):
    """The token or its user is refused. `message` is the backend's text for clients; `reason`
    says why, for the log and the client's `reason` field."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(f"{message}: {reason}")
        self.message, self.reason = message, reason


def hmac_key(secret_base64: str) -> bytes:
    """Java's `Base64.getDecoder().decode`: the standard alphabet, padding optional."""
    text = secret_base64.strip()
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            "the JWT secret is not base64: it must hold the backend's security.jwt.secret "
            "(SECURITY_JWT_SECRET) exactly as the backend reads it"
        ) from None
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise ConfigurationError(
            f"the JWT secret decodes to {len(key)} bytes; HS256 needs at least {MIN_HMAC_KEY_BYTES} "
            "(the backend refuses shorter keys too)"
        )
    return key


class TokenVerifier:
    """Checks a token's signature, expiry and issuer; the key is read once per container."""

    def __init__(self, settings: JwtSettings, secret_reader: Callable[[str], str] | None = None) -> None:
        if not settings.configured:
            raise ConfigurationError(
                "no JWT key: set JWT_SECRET_ARN (or JWT_SECRET locally) to the backend's "
                "security.jwt.secret, or JWT_PUBLIC_KEY for RS256"
            )
        self.settings = settings
        self._secret_reader = secret_reader
        self._key: bytes | str | None = None

    def _signing_key(self) -> tuple[bytes | str, list[str]]:
        if self.settings.rs256_public_key:
            return self.settings.rs256_public_key, ["RS256"]
        if self._key is None:
            text = self.settings.hs256_secret
            if not text:
                reader = self._secret_reader or aws.read_secret
                text = reader(self.settings.hs256_secret_arn)
            self._key = hmac_key(text)
        return self._key, ["HS256"]

    def claims(self, token: str) -> dict[str, Any]:
        import jwt  # with cryptography ~0.1 s: paid by the first authenticate, not every cold start

        key, algorithms = self._signing_key()
        # jjwt checks the signature and exp (and nbf), never iat: a backend whose clock runs ahead
        # mints tokens "issued in the future", which it accepts itself.
        options: Options = {
            "require": ["exp", "sub"],
            "verify_aud": bool(self.settings.audience),
            "verify_iat": False,
        }
        try:
            return jwt.decode(
                token,
                key,
                algorithms=algorithms,
                options=options,
                audience=self.settings.audience or None,
                issuer=self.settings.issuer or None,
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed(INVALID_TOKEN, "token expired") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationFailed(INVALID_TOKEN, "wrong issuer") from None
        except jwt.InvalidTokenError as error:
            raise AuthenticationFailed(INVALID_TOKEN, f"invalid token ({type(error).__name__})") from None


def authenticate(
    verifier: TokenVerifier, users: UserDirectory, token: str, claimed_user_id: int | None
) -> tuple[User, float]:
    """The user a token was issued to, from the `users` table (never the message's word), and
    when the token expires (epoch seconds): the session ends then."""
    claims = verifier.claims(token)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationFailed(INVALID_TOKEN, "the token names no user (sub)")
    user = users.by_email(subject)
    if user is None:
        raise AuthenticationFailed(USER_NOT_FOUND, "no users row has the token's email")
    if not user.active:
        raise AuthenticationFailed("User account is not active", f"user status is {user.status}")
    if claimed_user_id is not None and claimed_user_id != user.id:
        raise AuthenticationFailed(INVALID_TOKEN, "userId does not match the token's user")
    return user, float(claims["exp"])
