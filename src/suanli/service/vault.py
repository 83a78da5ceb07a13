"""Jobs' secrets at rest: encrypted with a key the database does not hold.

A job's ``secrets`` (name -> value) are stored as one Fernet token (AES-128-CBC with an
HMAC-SHA256, from the ``cryptography`` package) in its row; the spec keeps only their names. The
key is ``SUANLI_SECRET_KEY`` when set (every server of one PostgreSQL database needs the same
one), else ``STATE_DIR/secret.key`` (mode 0600, made on first start). A copy of the database
alone reveals no secret; losing the key loses the secrets of the jobs not yet run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from suanli.errors import VaultError

__all__ = ["KEY_ENV", "Vault", "VaultError"]

KEY_ENV = "SUANLI_SECRET_KEY"


class Vault:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise VaultError(f"the secret key is not a Fernet key: {exc}") from None
        self._mac_key = hmac.new(key, b"suanli run tokens", hashlib.sha256).digest()

    def mac(self, message: str) -> str:
        """An HMAC-SHA256 of ``message`` under a key derived from the vault's (hex): what
        proves a run token was made by a server of this alliance."""
        return hmac.new(self._mac_key, message.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def open(cls, state_dir: Path) -> Vault:
        """The key from ``SUANLI_SECRET_KEY``, else from the state directory (made if new)."""
        env = os.environ.get(KEY_ENV)
        if env:
            return cls(env.encode())
        path = state_dir / "secret.key"
        try:
            return cls(path.read_bytes().strip())
        except FileNotFoundError:
            key = Fernet.generate_key()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another server made it meanwhile
                return cls(path.read_bytes().strip())
            with os.fdopen(fd, "wb") as f:
                f.write(key + b"\n")
            return cls(key)

    def seal(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def open_sealed(self, token: str) -> dict[str, str]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise VaultError("a job's secrets cannot be decrypted with this key") from None
        return {str(k): str(v) for k, v in data.items()}
