"""Secrets we must be able to read back (HMAC keys shared with a partner), encrypted at rest.

Anything we only need to compare (API keys, postback tokens) is hashed instead; see
apps.accounts.services.secret_hash. The key comes from FIELD_ENCRYPTION_KEY, or is derived from
SECRET_KEY when that is not set, so rotating SECRET_KEY without setting FIELD_ENCRYPTION_KEY makes
stored secrets unreadable (they are then regenerated, never guessed).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    pass


def _fernet() -> Fernet:
    material = settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(f"opencpa-field:{material}".encode()).digest())
    return Fernet(key)


def secret_encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with this key") from exc
