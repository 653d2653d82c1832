"""A minimal TURN client (RFC 5766 Allocate with RFC 5389 long-term credentials).

Just enough to ask a TURN server for an allocation with a username and password and to
read whether it granted it: the test that coturn refuses expired credentials uses it
(``turnutils_uclient`` prints, but does not report the refusal in its exit status).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
ALLOCATE = 0x0003
ALLOCATE_SUCCESS = 0x0103
ALLOCATE_ERROR = 0x0113
REFRESH = 0x0004
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
LIFETIME = 0x000D
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_TRANSPORT = 0x0019
UDP = 17


def _attribute(kind: int, value: bytes) -> bytes:
    padding = b"\0" * ((4 - len(value) % 4) % 4)
    return struct.pack("!HH", kind, len(value)) + value + padding


def _message(kind: int, transaction: bytes, attributes: bytes,
             key: bytes | None = None) -> bytes:
    if key is not None:
        # The length in the header hashed covers MESSAGE-INTEGRITY itself (RFC 5389 §15.4).
        header = struct.pack("!HHI12s", kind, len(attributes) + 24, MAGIC_COOKIE, transaction)
        mac = hmac.new(key, header + attributes, hashlib.sha1).digest()
        attributes += _attribute(MESSAGE_INTEGRITY, mac)
    return struct.pack("!HHI12s", kind, len(attributes), MAGIC_COOKIE, transaction) + attributes


@dataclass(frozen=True)
class Answer:
    kind: int
    attributes: dict[int, bytes]

    @property
    def error(self) -> int | None:
        value = self.attributes.get(ERROR_CODE)
        return None if value is None else value[2] * 100 + value[3]


def _parse(data: bytes) -> Answer:
    kind, length, cookie, _ = struct.unpack("!HHI12s", data[:20])
    assert cookie == MAGIC_COOKIE, "not a STUN message"
    attributes: dict[int, bytes] = {}
    offset = 20
    while offset < 20 + length:
        attr_kind, attr_length = struct.unpack("!HH", data[offset:offset + 4])
        attributes.setdefault(attr_kind, data[offset + 4:offset + 4 + attr_length])
        offset += 4 + attr_length + (4 - attr_length % 4) % 4
    return Answer(kind, attributes)


def _exchange(sock: socket.socket, message: bytes) -> Answer:
    sock.send(message)
    return _parse(sock.recv(2048))


def allocate(host: str, port: int, username: str, password: str,
             timeout: float = 5.0) -> Answer:
    """Ask for a UDP relay with these credentials; the final answer (success or error).

    The first Allocate goes without credentials to learn the realm and nonce (401), the
    second is signed with key = MD5(username:realm:password). A granted allocation is
    released at once (Refresh with lifetime 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        transport = _attribute(REQUESTED_TRANSPORT, bytes([UDP, 0, 0, 0]))
        first = _exchange(sock, _message(ALLOCATE, os.urandom(12), transport))
        if first.error != 401:
            return first
        realm, nonce = first.attributes[REALM], first.attributes[NONCE]
        key = hashlib.md5(username.encode() + b":" + realm + b":" + password.encode()).digest()
        signed = (transport + _attribute(USERNAME, username.encode())
                  + _attribute(REALM, realm) + _attribute(NONCE, nonce))
        answer = _exchange(sock, _message(ALLOCATE, os.urandom(12), signed, key))
        if answer.kind == ALLOCATE_SUCCESS:
            release = (_attribute(LIFETIME, struct.pack("!I", 0))
                       + _attribute(USERNAME, username.encode())
                       + _attribute(REALM, realm) + _attribute(NONCE, nonce))
            sock.send(_message(REFRESH, os.urandom(12), release, key))
        return answer
