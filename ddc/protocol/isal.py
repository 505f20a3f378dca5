"""Intel ISA-L's erasure-code encoder (libisal.so.2, Debian/Ubuntu `libisal2`), through ctypes.

The one module that touches ISA-L. The sender computes FEC parity with it when the library is
installed: it multiplies by the same matrix over the same field as zfec, so the parity bytes are
zfec's, byte for byte (the wire format names zfec's code, and the egress decodes with zfec), at
about a tenth of zfec's CPU (docs/wire-protocol.md, "Encoder"). The matrix itself comes from
zfec (`ddc.protocol.fec.parity_matrix`): nothing here does field arithmetic.

Checked before use: the library's ABI major version (the soname, `libisal.so.2`), the two entry
points, and a known-answer test against zfec run by `ddc.protocol.fec` once at import. Without
the library the sender uses zfec and `status()` says why.

ISA-L's API (include/erasure_code.h, stable since 2.0)::

    void ec_init_tables(int k, int rows, unsigned char *a, unsigned char *gftbls);
    void ec_encode_data(int len, int k, int rows, unsigned char *gftbls,
                        unsigned char **data, unsigned char **coding);

`a` is the rows x k coefficient matrix (row-major), `gftbls` 32 * k * rows bytes of expanded
tables, `data` k pointers to `len` bytes each, `coding` rows pointers to `len` writable bytes.
"""

from __future__ import annotations

import ctypes
import struct

SONAME = "libisal.so.2"  # ABI major 2: the erasure-code API above
TABLE_BYTES_PER_COEFFICIENT = 32


def _load() -> tuple[ctypes.CDLL | None, str]:
    try:
        library = ctypes.CDLL(SONAME)
        init, encode = library.ec_init_tables, library.ec_encode_data
    except (OSError, AttributeError) as exc:
        return None, f"{SONAME} not usable ({exc})"
    init.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
    init.restype = None
    # the pointer arrays are passed as bytes of packed addresses (c_char_p: their buffer)
    encode.argtypes = [ctypes.c_int] * 3 + [ctypes.c_char_p] * 3
    encode.restype = None
    return library, SONAME


_library, _origin = _load()
_disabled: str | None = None


def available() -> bool:
    return _library is not None and _disabled is None


def status() -> str:
    """Which library computes parity, or why ISA-L does not, for the startup log line."""
    if _library is None:
        return f"zfec ({_origin}; install ISA-L, Debian's libisal2, for ~10x less encoding CPU)"
    if _disabled is not None:
        return f"zfec (ISA-L {SONAME} refused: {_disabled})"
    return f"ISA-L ({SONAME})"


def disable(reason: str) -> None:
    """Stops using ISA-L (its known-answer test against zfec failed)."""
    global _disabled
    _disabled = reason


def _address(buffer: bytes | bytearray) -> int:
    if isinstance(buffer, bytearray):
        return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
    address = ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value
    assert address is not None
    return address


class Encoder:
    """Multiplies K equal-size blocks by an M x K coefficient matrix (the parity rows)."""

    def __init__(self, k: int, m: int, matrix: bytes) -> None:
        if _library is None:
            raise RuntimeError(status())
        if len(matrix) != k * m:
            raise ValueError(f"a {m} x {k} matrix has {k * m} coefficients, got {len(matrix)}")
        self.k = k
        self.m = m
        self._tables = ctypes.create_string_buffer(TABLE_BYTES_PER_COEFFICIENT * k * m)
        _library.ec_init_tables(k, m, matrix, self._tables)
        self._data_pointers = struct.Struct(f"{k}P")  # native pointers
        self._parity_pointers = struct.Struct(f"{m}P")

    def encode_into(self, blocks: bytes, size: int, out: bytearray, offset: int, step: int) -> None:
        """Parity of the K blocks of `size` bytes laid end to end in `blocks`: parity row j is
        written to out[offset + j * step : offset + j * step + size]."""
        if len(blocks) != self.k * size or offset + (self.m - 1) * step + size > len(out):
            raise ValueError("blocks or output buffer of the wrong size")
        base = _address(blocks)
        out_base = _address(out) + offset
        data = self._data_pointers.pack(*range(base, base + self.k * size, size))
        parity = self._parity_pointers.pack(*range(out_base, out_base + self.m * step, step))
        assert _library is not None
        _library.ec_encode_data(size, self.k, self.m, self._tables, data, parity)
