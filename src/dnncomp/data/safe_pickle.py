"""A restricted unpickler for dataset pickles (CIFAR-10's python batches).

A pickle can name any importable callable and have it called while loading, so
``pickle.load`` on a downloaded file runs whatever its author chose. This
unpickler resolves only the globals a dataset pickle holds: a few builtin types
and numpy's array reconstruction. Any other global raises UnsafePickleError from
``find_class``, before the object it names exists, so nothing of it runs.

Opcodes that build dicts, lists, bytes, str and ints need no globals at all;
the allowed globals cover numpy arrays as pickled by numpy 1.x (``numpy.core``)
and 2.x (``numpy._core``) under protocols 2 to 5, including ``_codecs.encode``,
which numpy uses for the raw bytes of an array under protocol 2.
"""

from __future__ import annotations

import builtins
import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError, UnsafePickleError

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct as _np_reconstruct


def _reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"rebuilds an array as {subtype!r}, not numpy.ndarray")
    return _np_reconstruct(subtype, shape, dtype)


def _dtype(spec, align=False, copy=False):
    # An object array would be filled with objects built elsewhere in the pickle, which are
    # restricted too; refusing it outright keeps arrays to plain numbers.
    if isinstance(spec, (str, bytes)) and spec[:1] in ("O", b"O"):
        raise UnsafePickleError("asks for an object array; dataset arrays hold numbers")
    return np.dtype(spec, align, copy)


def _frombuffer(buffer, dtype, shape, order):
    # Protocol 5 (Python 3.14's default) pickles arrays as numpy's _frombuffer(bytes, dtype, shape, order).
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"rebuilds an array of dtype {dtype!r}; dataset arrays hold numbers")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    # numpy's protocol-2 pickles store array bytes as _codecs.encode(text, "latin1").
    if str(encoding).lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"calls _codecs.encode with encoding {encoding!r}; numpy only uses latin1")
    return obj.encode("latin1", errors)


_ALLOWED: dict[tuple[str, str], Any] = {
    **{("builtins", name): getattr(builtins, name) for name in ("dict", "list", "tuple", "bytes", "str", "int", "float")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _codecs_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"imports {module}.{name}, which a dataset pickle never holds") from None

    def persistent_load(self, pid):
        raise UnsafePickleError("uses persistent ids, which a dataset pickle never holds")


def safe_load(source: bytes | BinaryIO, what: str, encoding: str = "bytes") -> Any:
    """Unpickle a dataset file, refusing anything but plain data and numpy arrays.

    ``what`` names the file in error messages. ``encoding="bytes"`` reads the
    original Python 2 CIFAR pickles the way their authors document.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        return RestrictedUnpickler(stream, encoding=encoding).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{what}: unsafe pickle refused: it {exc}; nothing in it was run") from None
    except DataError:
        raise
    except Exception as exc:  # truncated or not a pickle: EOFError, UnpicklingError, ValueError...
        raise DataError(f"{what}: not a readable pickle ({type(exc).__name__}: {exc})") from None
