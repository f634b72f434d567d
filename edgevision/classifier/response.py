"""The Custom Vision `ImagePrediction` JSON, written fast: a 1000-tag model answers with ~85 kB of JSON per
image, and building it through dicts and `json.dumps` costs about as much as the inference itself.

Each model's per-tag JSON fragments are escaped once; a response is one join of cached strings and the
probabilities' texts. A float32 model's probabilities are formatted for the whole vector at once in numpy
(`float32_texts`: 9 significant digits, which round-trip every float32, so the answer carries exactly what
the model produced); any other vector gets Python's float repr, byte for byte what `json.dumps` writes.
"""

from __future__ import annotations

import json
import threading
import uuid

import numpy as np

from edgevision.contracts import iso_time, now_utc
from edgevision.models import ImageModel

WIDTH = 14  # "0.000123456789", "1.23456789e-05": the longest text `float32_texts` writes
POSITIONAL_FROM = -4  # decimal exponent from which numbers are written without one, as repr() does
_POWERS = 10.0 ** np.arange(-20, 60)  # _POWERS[20 + k] = 10**k
_FOUR_DIGITS = np.array([list(b"%04d" % i) for i in range(10**4)], np.uint8)  # "0000" to "9999"
_ZERO, _ONE = (np.frombuffer(text.ljust(WIDTH, b"\0"), np.uint8) for text in (b"0.0", b"1.0"))


class PredictionWriter:
    """Turns a probability vector into the response body. Thread-safe."""

    def __init__(self) -> None:
        self._fragments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def body(self, model: ImageModel, probabilities: np.ndarray, limit: int = 0) -> str:
        """`probabilities` in label order -> JSON with predictions sorted by probability, descending."""
        order = np.argsort(-probabilities, kind="stable")  # stable: ties keep label order, like sorted()
        if limit:
            order = order[:limit]
        heads, tails = self._for(model)
        parts = [""] * (3 * len(order))
        parts[0::3] = heads[order].tolist()
        parts[1::3] = _texts(probabilities[order])
        parts[2::3] = tails[order].tolist()
        envelope = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "project": model.project_id,
                "iteration": model.iteration_id,
                "created": iso_time(now_utc()),
            },
            separators=(",", ":"),
        )
        return f'{envelope[:-1]},"predictions":[{"".join(parts)[:-1]}]}}'

    def _for(self, model: ImageModel) -> tuple[np.ndarray, np.ndarray]:
        fragments = self._fragments.get(model.model_id)
        if fragments is None:
            heads = [f'{{"tagName":{json.dumps(label)},"probability":' for label in model.labels]
            tails = [f',"tagId":{json.dumps(tag_id)},"boundingBox":null}},' for tag_id in model.tag_ids]
            fragments = (np.array(heads, dtype=object), np.array(tails, dtype=object))
            with self._lock:
                self._fragments[model.model_id] = fragments
        return fragments


def _texts(values: np.ndarray) -> list[str]:
    if values.dtype == np.float32 and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        return float32_texts(values)
    return [repr(value) for value in values.astype(np.float64).tolist()]  # also NaN, which min/max reject


def float32_texts(values: np.ndarray) -> list[str]:
    """float32 values in [0, 1] -> JSON numbers with 9 significant digits, built for all values at once.

    Positional from 1e-4 (trailing zeros dropped: 0.5, 0.25), scientific below; 0 and 1 as 0.0 and 1.0.
    A mantissa that float64 arithmetic rounds one unit off in the 9th digit still lies within half a
    float32 step (2**-25 relative, against at most 1e-8), so every text parses back to the same float32.
    """
    x = values.astype(np.float64)
    inside = (x > 0.0) & (x < 1.0)
    x = np.where(inside, x, 0.5)
    exponent = np.floor(np.log10(x)).astype(np.int64)
    mantissa = np.rint(x * _POWERS[20 + 8 - exponent]).astype(np.int64)
    exponent += mantissa >= 10**9  # log10 one off at a power of ten
    exponent -= mantissa < 10**8
    mantissa = np.rint(x * _POWERS[20 + 8 - exponent]).astype(np.int64)
    chars = np.zeros((len(x), WIDTH), np.uint8)
    for rows, write in ((exponent >= POSITIONAL_FROM, _positional), (exponent < POSITIONAL_FROM, _scientific)):
        rows &= inside
        chars[rows] = write(mantissa[rows], exponent[rows])
    chars[values == 0.0], chars[values == 1.0] = _ZERO, _ONE
    return chars.astype(np.uint32).view(f"U{WIDTH}").ravel().tolist()  # NUL padding is dropped by tolist()


def _positional(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """'0.' and 12 decimals with the trailing zeros as NUL; right for exponents -4 to -1."""
    fraction = mantissa * 10 ** np.clip(exponent - POSITIONAL_FROM, 0, 3)
    chars = np.empty((len(mantissa), WIDTH), np.uint8)
    chars[:, 0], chars[:, 1] = ord("0"), ord(".")
    chars[:, 2:6], chars[:, 6:10], chars[:, 10:] = _groups(fraction // 10**8, fraction // 10**4, fraction)
    chars[np.logical_and.accumulate(chars[:, ::-1] == ord("0"), axis=1)[:, ::-1]] = 0
    return chars


def _scientific(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """'d.dddddddde-XX'; right for exponents -5 to -99 (float32 goes down to -45)."""
    chars = np.empty((len(mantissa), WIDTH), np.uint8)
    chars[:, 0], chars[:, 1] = mantissa // 10**8 + ord("0"), ord(".")
    chars[:, 2:6], chars[:, 6:10], exponent_digits = _groups(mantissa // 10**4, mantissa, -exponent)
    chars[:, 10], chars[:, 11], chars[:, 12:] = ord("e"), ord("-"), exponent_digits[:, 2:]
    return chars


def _groups(*numbers: np.ndarray) -> list[np.ndarray]:
    """The last 4 decimal digits of each number, as characters: table look-ups instead of a division per digit."""
    return [np.take(_FOUR_DIGITS, number % 10**4, axis=0) for number in numbers]  # take: 4x faster than []
