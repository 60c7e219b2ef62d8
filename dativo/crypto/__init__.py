"""Column encryption at rest, driven by the data contract (see docs/encryption.md).

* :mod:`~dativo.crypto.keyring`: the key ids and keys, and the active one;
* :mod:`~dativo.crypto.cipher`: AES-256-SIV tokens, deterministic or randomized;
* :mod:`~dativo.crypto.columns`: which columns a contract or a table encrypts;
* :mod:`~dativo.crypto.providers`: where keys come from (env, file, Vault, KMS-style).
"""

from dativo.crypto.cipher import ColumnCipher
from dativo.crypto.columns import EncryptedColumn, EncryptionPlan
from dativo.crypto.keyring import Keyring
from dativo.crypto.reading import decrypt_column

__all__ = ["ColumnCipher", "EncryptedColumn", "EncryptionPlan", "Keyring", "decrypt_column"]
