"""A LightGBM model in LightGBM's own C library, called through ctypes: ``NativeBooster``.

The fast path scores a LightGBM model with its compiled trees (:mod:`.forest`) and needs LightGBM itself
for two things only: the booster fallback (a model the trees do not cover) and TreeSHAP contributions
(``explain=true``). Both are LightGBM's C functions (``LGBM_BoosterPredictForMat``, as ``Booster.predict``
calls them), so this module calls them directly on a model loaded from LightGBM's text format
(``Booster.model_to_string``): the ``lightgbm`` Python package imports scikit-learn and pandas, which a
worker serving a stored fast path never needs otherwise (about 1.5 s and 150 MB per worker). The results
are those of ``Booster.predict`` to the bit: the same library, the same call, one thread.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import sys
import threading
import weakref
from pathlib import Path

import numpy as np

# LightGBM's c_api.h constants.
_DTYPE_FLOAT64 = 1
_ROW_MAJOR = 1
_PREDICT_NORMAL = 0
_PREDICT_RAW_SCORE = 1
_PREDICT_CONTRIB = 3
# One thread, as the fast path scores (Booster.predict(..., num_threads=1)).
_PARAMETERS = b"num_threads=1"
_LIBRARY_NAMES = {"darwin": "lib_lightgbm.dylib", "win32": "lib_lightgbm.dll"}


class NativeBoosterError(Exception):
    """LightGBM's C library is missing or refused a call (the message is LightGBM's)."""


@functools.cache
def _library() -> ctypes.CDLL:
    """``lib_lightgbm`` of the installed lightgbm package, loaded without importing the package.

    Raises NativeBoosterError when lightgbm is not installed or its library is not where its wheels put it.
    """
    spec = importlib.util.find_spec("lightgbm")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    name = _LIBRARY_NAMES.get(sys.platform, "lib_lightgbm.so")
    for location in locations:
        path = Path(location) / "lib" / name
        if path.is_file():
            library = ctypes.cdll.LoadLibrary(str(path))
            library.LGBM_GetLastError.restype = ctypes.c_char_p
            return library
    raise NativeBoosterError(f"LightGBM's C library ({name}) was not found in the lightgbm package {locations}")


def _check(code: int) -> None:
    if code != 0:
        message = _library().LGBM_GetLastError()
        raise NativeBoosterError(message.decode("utf-8", "replace") if message else f"LightGBM error {code}")


class NativeBooster:
    """A LightGBM model loaded from its text format (``Booster.model_to_string()``) into lib_lightgbm.

    Raises NativeBoosterError when the library is missing or LightGBM cannot parse ``model``.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(
            _library().LGBM_BoosterLoadModelFromString(model.encode(), ctypes.byref(iterations), ctypes.byref(handle))
        )
        self._handle = handle
        # Freed with the object: a hot swap leaves the previous model's booster to the garbage collector.
        weakref.finalize(self, _library().LGBM_BoosterFree, handle)
        n_features = ctypes.c_int(0)
        _check(_library().LGBM_BoosterGetNumFeature(handle, ctypes.byref(n_features)))
        self.n_features = int(n_features.value)
        # LightGBM's predictor is safe to share between threads, but explanations run in the thread pool:
        # one call at a time keeps the per-booster buffers LightGBM reuses out of any doubt.
        self._lock = threading.Lock()

    def predict(self, matrix: np.ndarray, *, raw_score: bool = False) -> np.ndarray:
        """P(label = 1) (or the raw score), shape ``(n,)``, of an ``(n, n_features)`` float64 matrix:
        ``Booster.predict(matrix, raw_score=..., num_threads=1)``. Raises NativeBoosterError or ValueError
        (a matrix of another width)."""
        return self._call(matrix, _PREDICT_RAW_SCORE if raw_score else _PREDICT_NORMAL, 1)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions ``(n, n_features + 1)`` to the raw score, the bias last:
        ``Booster.predict(matrix, pred_contrib=True, num_threads=1)``. Raises like :meth:`predict`."""
        return self._call(matrix, _PREDICT_CONTRIB, self.n_features + 1).reshape(matrix.shape[0], -1)

    def _call(self, matrix: np.ndarray, predict_type: int, per_row: int) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} columns, got shape {matrix.shape}")
        data = np.ascontiguousarray(matrix, dtype=np.float64)
        out = np.empty(data.shape[0] * per_row, dtype=np.float64)
        written = ctypes.c_int64(0)
        if data.shape[0] == 0:
            return out
        with self._lock:
            _check(
                _library().LGBM_BoosterPredictForMat(
                    self._handle,
                    data.ctypes.data_as(ctypes.c_void_p),
                    ctypes.c_int(_DTYPE_FLOAT64),
                    ctypes.c_int32(data.shape[0]),
                    ctypes.c_int32(data.shape[1]),
                    ctypes.c_int(_ROW_MAJOR),
                    ctypes.c_int(predict_type),
                    ctypes.c_int(0),  # from the first iteration
                    ctypes.c_int(-1),  # to the last one the text holds (model_to_string saved the best)
                    ctypes.c_char_p(_PARAMETERS),
                    ctypes.byref(written),
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
        if written.value != len(out):
            raise NativeBoosterError(f"LightGBM wrote {written.value} values, expected {len(out)}")
        return out
