"""LightGBM trees scored through the library's C API, without importing the ``lightgbm`` package.

``import lightgbm`` costs about 0.3 s even without its scikit-learn layer (it imports
``scipy.sparse``), most of a command-line prediction. Scoring needs two calls of the shared
library that package ships — load a model from its text, predict on a float64 matrix — so this
module loads ``lib_lightgbm`` with ctypes and calls them. The numbers are the library's own: the
same trees, the same TreeSHAP contributions as ``lightgbm.Booster.predict``. Training still uses
the package.
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

_DTYPE_FLOAT64 = 1
_ROW_MAJOR = 1
_NORMAL, _RAW_SCORE, _CONTRIB = 0, 1, 3
_LOCK = threading.Lock()
_LIB: Any = None


def _library() -> Any:
    global _LIB
    with _LOCK:
        if _LIB is None:
            spec = importlib.util.find_spec("lightgbm")  # finds the package without importing it
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("lightgbm is not installed")
            folder = Path(next(iter(spec.submodule_search_locations))) / "lib"
            found = sorted(folder.glob("lib_lightgbm.*"))
            if not found:
                raise ImportError(f"no lib_lightgbm in {folder}")
            lib = ctypes.cdll.LoadLibrary(str(found[0]))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _LIB = lib
    return _LIB


def _check(code: int) -> None:
    if code != 0:
        raise RuntimeError(_library().LGBM_GetLastError().decode("utf-8", "replace"))


class Trees:
    """A LightGBM model loaded from its text; ``predict`` as ``lightgbm.Booster.predict`` for a
    dense matrix (probability, ``raw_score`` or ``pred_contrib``)."""

    def __init__(self, model_text: str) -> None:
        lib = _library()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                ctypes.c_char_p(model_text.encode("utf-8")), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        features = ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(features)))
        self.num_features = features.value

    def predict(
        self, X: np.ndarray, *, raw_score: bool = False, pred_contrib: bool = False, num_threads: int = 1
    ) -> np.ndarray:
        data = np.ascontiguousarray(X, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.num_features:
            raise ValueError(f"expected a matrix of {self.num_features} features, got shape {data.shape}")
        rows = data.shape[0]
        kind = _CONTRIB if pred_contrib else _RAW_SCORE if raw_score else _NORMAL
        width = self.num_features + 1 if pred_contrib else 1
        out = np.empty(rows * width, dtype=np.float64)
        written = ctypes.c_int64(0)
        _check(
            _library().LGBM_BoosterPredictForMat(
                self._handle,
                data.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_DTYPE_FLOAT64),
                ctypes.c_int32(rows),
                ctypes.c_int32(self.num_features),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(kind),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_char_p(f"num_threads={num_threads}".encode()),
                ctypes.byref(written),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        if written.value != out.size:
            raise RuntimeError(f"LightGBM wrote {written.value} predictions, expected {out.size}")
        return out.reshape(rows, width) if pred_contrib else out

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value is not None and _LIB is not None:
            _LIB.LGBM_BoosterFree(handle)
