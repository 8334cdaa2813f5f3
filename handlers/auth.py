"""Verifying the JWT a client sends in `authenticate`: HS256 with a shared secret, or RS256 with
the backend's public key. Signature and expiry are always checked; issuer and audience when set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handlers import aws
from handlers.settings import ConfigurationError, JwtSettings

if TYPE_CHECKING:
    from jwt.types import Options

USER_ID_CLAIMS = ("userId", "user_id", "uid", "id")
EMAIL_CLAIMS = ("email", "userEmail", "sub")
ROLE_CLAIMS = ("role", "userRole", "roles")


class AuthenticationFailed(Exception):
    """The token is forged, expired or does not name the user; the text is safe to send back."""


@dataclass(frozen=True)
class Identity:
    user_id: int
    email: str | None
    role: str | None


class TokenVerifier:
    def __init__(
        self, settings: JwtSettings, secret_reader: Callable[[str], str] | None = None
    ) -> None:
        if not settings.configured:
            raise ConfigurationError(
                "no JWT key: set JWT_SECRET_ARN (HS256) or JWT_PUBLIC_KEY (RS256)"
            )
        self.settings = settings
        self._secret_reader = secret_reader
        self._key: str | None = None

    def _signing_key(self) -> tuple[str, list[str]]:
        if self.settings.rs256_public_key:
            return self.settings.rs256_public_key, ["RS256"]
        if self._key is None:
            if self.settings.hs256_secret:
                self._key = self.settings.hs256_secret
            else:
                reader = self._secret_reader or aws.read_secret
                self._key = reader(self.settings.hs256_secret_arn)
        return self._key, ["HS256"]

    def verify(self, token: str, claimed_user_id: int | None = None) -> Identity:
        import jwt  # with cryptography ~0.1 s: paid by the first authenticate, not every cold start

        key, algorithms = self._signing_key()
        options: Options = {"require": ["exp"], "verify_aud": bool(self.settings.audience)}
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, options=options,
                audience=self.settings.audience or None, issuer=self.settings.issuer or None,
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("token expired") from None
        except jwt.InvalidTokenError as error:
            raise AuthenticationFailed(f"invalid token ({type(error).__name__})") from None
        user_id = _claim_user_id(claims)
        if user_id is None:
            if claimed_user_id is None:
                raise AuthenticationFailed("token names no user id and the message gives none")
            user_id = claimed_user_id
        elif claimed_user_id is not None and claimed_user_id != user_id:
            raise AuthenticationFailed("userId does not match the token")
        email = next(
            (
                str(claims[c])
                for c in EMAIL_CLAIMS
                if isinstance(claims.get(c), str) and "@" in claims[c]
            ),
            None,
        )
        role = next((_role(claims[c]) for c in ROLE_CLAIMS if claims.get(c)), None)
        return Identity(user_id, email.lower() if email else None, role)


def _claim_user_id(claims: dict[str, Any]) -> int | None:
    for name in USER_ID_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _role(value: Any) -> str:
    return str(value[0]) if isinstance(value, list) and value else str(value)
