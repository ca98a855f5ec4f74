"""Face matcher of the terminal: the gallery, its thresholds and the integer wire form.

The implementation lives in wire/faces.py because it is part of the contract: the hub identifies
with the same matcher and thresholds as the terminal, and the gallery travels in the signed roster
as integers. This module is the edge's name for it, so the camera pipeline and the hub can never
drift apart.

- `Gallery(staff_ids, encodings (n, 128))`: several rows per staff member allowed; `best(encoding)`
  is one vectorised `np.linalg.norm(encodings - probe, axis=1)` and an argmin.
- `Match(staff | None, distance, decision)`: `decision` is "match" below MATCH_BELOW, "review"
  below REVIEW_BELOW (matched, flagged for a person to look at), otherwise "unknown" (staff None).
- `quantize` / `dequantize`: round(x * 10000) as ints and back (error <= 5e-5 per component).

Thresholds, measured again for this module on ../shared/faces (face_recognition 1.3.0, dlib-bin
20.0.1, HOG detector, photos downscaled to at most 800 px):

| probe          | own enrollment | nearest other enrolled |
|----------------|----------------|------------------------|
| obama          | 0.358          | 0.785                  |
| biden          | 0.399          | 0.845                  |
| kit_harington  | 0.397          | 0.813                  |
| rose_leslie    | 0.408          | 0.836                  |
| alex_lacamoire | 0.526 (worst)  | 0.807                  |
| stranger (lin-manuel-miranda) | - | 0.713 (obama)     |

scenes/two_people.jpg: obama 0.343, biden 0.059. MATCH_BELOW = 0.55 accepts the worst genuine pair
(0.526) with a small margin; REVIEW_BELOW = 0.62 keeps 0.09 below the stranger's 0.713, and the band
0.55-0.62 is reviewed, not refused.
"""

from __future__ import annotations

from wire.faces import (
    MATCH_BELOW,
    REVIEW_BELOW,
    SCALE,
    Decision,
    Gallery,
    Match,
    decide,
    dequantize,
    quantize,
)

__all__ = [
    "MATCH_BELOW",
    "REVIEW_BELOW",
    "SCALE",
    "Decision",
    "Gallery",
    "Match",
    "decide",
    "dequantize",
    "quantize",
]
