"""The face sign-in terminal: matcher (pure), liveness (pure), pipeline (pure per frame) and the
frame source (the only I/O: OpenCV capture). Public surface re-exported here."""

from edge_agent.drivers.face.liveness import BlinkDetector, eye_aspect_ratio
from edge_agent.drivers.face.matcher import MATCH_BELOW, REVIEW_BELOW, Gallery, Match, dequantize, quantize
from edge_agent.drivers.face.pipeline import FaceEvent, FacePipeline

__all__ = [
    "MATCH_BELOW",
    "REVIEW_BELOW",
    "BlinkDetector",
    "FaceEvent",
    "FacePipeline",
    "Gallery",
    "Match",
    "dequantize",
    "eye_aspect_ratio",
    "quantize",
]
