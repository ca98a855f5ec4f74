"""The face gallery as the hub sends it and the terminal matches against it (part of the contract:
the same matcher and thresholds on both sides, and integers only on the wire).

Thresholds, from dlib's 128-d encodings of ../shared/faces (face_recognition 1.3.0, dlib 20.0.1):
genuine pairs 0.35-0.52 (worst: alex_lacamoire 0.52), nearest impostor among the enrolled 0.75, the
stranger's nearest 0.71. A distance below MATCH_BELOW is a match; up to REVIEW_BELOW it is matched
but flagged for review; above, unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

MATCH_BELOW = 0.55
REVIEW_BELOW = 0.62
SCALE = 10_000  # encodings travel as integers: round(x * SCALE)

Decision = Literal["match", "review", "unknown"]


@dataclass(frozen=True)
class Match:
    staff: str | None
    distance: float
    decision: Decision


def decide(distance: float) -> Decision:
    if distance < MATCH_BELOW:
        return "match"
    if distance < REVIEW_BELOW:
        return "review"
    return "unknown"


class Gallery:
    """Enrolled encodings, several per staff member allowed; one vectorised distance per probe."""

    def __init__(self, staff_ids: list[str], encodings: np.ndarray) -> None:
        if encodings.ndim != 2 or encodings.shape[0] != len(staff_ids):
            raise ValueError(f"{len(staff_ids)} staff ids for encodings of shape {encodings.shape}")
        self.staff_ids = list(staff_ids)
        self.encodings = np.ascontiguousarray(encodings, dtype=np.float32)  # half the memory traffic

    def __len__(self) -> int:
        return len(self.staff_ids)

    def best(self, encoding: np.ndarray) -> Match:
        distances = np.linalg.norm(self.encodings - np.asarray(encoding, dtype=np.float32), axis=1)
        index = int(np.argmin(distances))
        distance = float(distances[index])
        decision = decide(distance)
        return Match(self.staff_ids[index] if decision != "unknown" else None, distance, decision)

    @classmethod
    def from_wire(cls, entries: list[dict[str, object]]) -> Gallery | None:
        """From the roster body's `gallery`: [{"staff": id, "encoding": [int, ...]}, ...]."""
        if not entries:
            return None
        staff = [str(entry["staff"]) for entry in entries]
        return cls(staff, np.stack([dequantize(entry["encoding"]) for entry in entries]))  # type: ignore[arg-type]


def quantize(encoding: np.ndarray) -> list[int]:
    return [int(v) for v in np.rint(np.asarray(encoding, dtype=np.float64) * SCALE)]


def dequantize(values: list[int]) -> np.ndarray:
    if len(values) != 128 or not all(isinstance(v, int) for v in values):
        raise ValueError("a face encoding is 128 integers")
    return np.asarray(values, dtype=np.float64) / SCALE
