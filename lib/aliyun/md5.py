"""Pure-Python MD5 (RFC 1321), loaded by aliyun.digest only on ports whose hashlib lacks md5.

Same interface as a MicroPython hash object: ``MD5(data)``, ``update(data)``, ``digest()``.
Slow but small; a sign needs two or three 64-byte blocks.
"""

import struct

# Per-round shift amounts and the sine-derived constants of RFC 1321 §3.4, written out because
# single-precision float ports cannot compute them.
_SHIFTS = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4
_K = (
    0xD76AA478, 0xE8C7B756, 0x242070DB, 0xC1BDCEEE,
    0xF57C0FAF, 0x4787C62A, 0xA8304613, 0xFD469501,
    0x698098D8, 0x8B44F7AF, 0xFFFF5BB1, 0x895CD7BE,
    0x6B901122, 0xFD987193, 0xA679438E, 0x49B40821,
    0xF61E2562, 0xC040B340, 0x265E5A51, 0xE9B6C7AA,
    0xD62F105D, 0x02441453, 0xD8A1E681, 0xE7D3FBC8,
    0x21E1CDE6, 0xC33707D6, 0xF4D50D87, 0x455A14ED,
    0xA9E3E905, 0xFCEFA3F8, 0x676F02D9, 0x8D2A4C8A,
    0xFFFA3942, 0x8771F681, 0x6D9D6122, 0xFDE5380C,
    0xA4BEEA44, 0x4BDECFA9, 0xF6BB4B60, 0xBEBFBC70,
    0x289B7EC6, 0xEAA127FA, 0xD4EF3085, 0x04881D05,
    0xD9D4D039, 0xE6DB99E5, 0x1FA27CF8, 0xC4AC5665,
    0xF4292244, 0x432AFF97, 0xAB9423A7, 0xFC93A039,
    0x655B59C3, 0x8F0CCC92, 0xFFEFF47D, 0x85845DD1,
    0x6FA87E4F, 0xFE2CE6E0, 0xA3014314, 0x4E0811A1,
    0xF7537E82, 0xBD3AF235, 0x2AD7D2BB, 0xEB86D391,
)  # fmt: skip
_MASK = 0xFFFFFFFF


class MD5:
    """Incremental MD5; ``digest()`` may be called once the data is complete."""

    digest_size = 16
    block_size = 64

    def __init__(self, data: bytes = b""):
        self._state = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
        self._buf = b""
        self._count = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        self._count += len(data)
        buf = self._buf + bytes(data)
        end = len(buf) & ~63
        for off in range(0, end, 64):
            self._block(buf[off : off + 64])
        self._buf = buf[end:]

    def digest(self) -> bytes:
        # Pad a copy: 0x80, zeros to 56 mod 64, then the bit length (little-endian), §3.1-3.2.
        bits = (self._count * 8) & 0xFFFFFFFFFFFFFFFF
        pad = b"\x80" + b"\x00" * ((55 - self._count) % 64) + struct.pack("<Q", bits)
        saved = self._state, self._buf, self._count
        self.update(pad)
        out = struct.pack("<4I", *self._state)
        self._state, self._buf, self._count = saved
        return out

    def _block(self, block) -> None:
        # One 64-byte block (RFC 1321 §3.4): 4 rounds of 16 steps, each with its own boolean
        # function F/G/H/I and message-word order; 32-bit arithmetic is emulated with _MASK.
        x = struct.unpack("<16I", block)
        a, b, c, d = self._state
        for i in range(64):
            r = i >> 4
            if r == 0:
                f = (b & c) | (~b & d)
                g = i
            elif r == 1:
                f = (d & b) | (~d & c)
                g = (5 * i + 1) & 15
            elif r == 2:
                f = b ^ c ^ d
                g = (3 * i + 5) & 15
            else:
                f = c ^ (b | (~d & _MASK))
                g = (7 * i) & 15
            f = (f + a + _K[i] + x[g]) & _MASK
            s = _SHIFTS[i]
            a, d, c = d, c, b
            b = (b + ((f << s) | (f >> (32 - s)))) & _MASK
        s0, s1, s2, s3 = self._state
        self._state = ((s0 + a) & _MASK, (s1 + b) & _MASK, (s2 + c) & _MASK, (s3 + d) & _MASK)
