"""Join codes and presenter tokens.

A join code is read aloud and typed on a phone: six characters from an alphabet without
the look-alikes 0/O and 1/I/L, upper case, and typed in any case with spaces or dashes.
31^6 is about 887 million codes, so guessing a live one among at most a few hundred takes
millions of tries. The presenter token is the secret: 32 random bytes, kept only by the
presenter's page; the server keeps its SHA-256, never the token itself.
"""

import hashlib
import hmac
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6
TOKEN_BYTES = 32


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str | None:
    """The code as stored, or None if `text` cannot be one ("ab-c 2de" -> "ABC2DE")."""
    code = text.replace("-", "").replace(" ", "").upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
