"""The longest text each kind of input may be, on every database.

Inputs are checked against these before any write; the tables' columns are as long.
"""

from __future__ import annotations

ID_LENGTH = 200
KEY_LENGTH = 255
RESOURCE_LENGTH = 500
TEXT_LENGTH = 2000
DIGEST_LENGTH = 64
# The id of an audit key: the first hex digits of a digest of the key.
KEY_ID_LENGTH = 16
