"""Face enrollment and the gallery: encodings computed at the hub (face_recognition, dlib), kept in the
audit log, and sent to the edges in the signed retained `roster` message.

`identify` uses the same matcher and thresholds as the terminal (wire/faces.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hub.config import HubConfig
from hub.domain import AuditEntry
from hub.store.store import Store
from wire.faces import Gallery, quantize

ENROLL_KIND = "face_enroll"
REVOKE_KIND = "face_revoke"
MAX_SIDE = 1024  # photos are downscaled to this before detection


class EnrollError(ValueError):
    pass


@dataclass(frozen=True)
class FaceFound:
    photo: str
    staff: str | None
    distance_milli: int
    decision: str


def _load(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except FileNotFoundError as exc:
        raise EnrollError(f"{path}: 照片不存在 no such file") from exc
    except IsADirectoryError as exc:
        raise EnrollError(f"{path}: is a directory, not a photo") from exc
    except UnidentifiedImageError as exc:
        raise EnrollError(f"{path}: 不是图片 not an image PIL can read (JPEG, PNG, ...)") from exc
    except Image.DecompressionBombError as exc:
        raise EnrollError(f"{path}: too large to be a photo ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise EnrollError(f"{path}: cannot read the photo: {getattr(exc, 'strerror', None) or exc}") from exc
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    return np.asarray(image)


def encodings_in(path: Path) -> list[np.ndarray]:
    import face_recognition  # heavy (dlib models): imported only by the commands that need it

    image = _load(path)
    boxes = face_recognition.face_locations(image, model="hog")
    return list(face_recognition.face_encodings(image, boxes))


def enroll(config: HubConfig, store: Store, staff: str, photos: list[Path]) -> list[AuditEntry]:
    """Refuse every photo without exactly one face before storing anything."""
    if staff not in {member.id for member in config.staff}:
        raise EnrollError(f"staff {staff!r} is not on the roster")
    found = []
    for photo in photos:
        encodings = encodings_in(photo)
        if not encodings:
            raise EnrollError(f"{photo}: 照片中没有人脸 no face found; use a frontal, well-lit photo")
        if len(encodings) > 1:
            raise EnrollError(f"{photo}: 照片中有 {len(encodings)} 张人脸 several faces; "
                              "enroll from a photo of this person alone")
        found.append((photo, encodings[0]))
    return [
        store.append(ENROLL_KIND, {
            "staff": staff,
            "photo": photo.name,
            "sha256": hashlib.sha256(photo.read_bytes()).hexdigest(),
            "encoding": quantize(encoding),
        }, ref=staff)
        for photo, encoding in found
    ]


def revoke(config: HubConfig, store: Store, staff: str, by: str, reason: str) -> AuditEntry:
    """Take a person's face out of the gallery (they left, or withdrew consent): a logged entry; the
    enrollments stay in the log as history, the gallery no longer carries them."""
    if not by.strip():
        raise EnrollError("--by must name who revoked it")
    if not any(e["staff"] == staff for e in gallery_entries(store)):
        raise EnrollError(f"staff {staff!r} has no face in the gallery")
    return store.append(REVOKE_KIND, {"staff": staff, "by": by, "reason": reason}, ref=staff)


def gallery_entries(store: Store) -> list[dict[str, Any]]:
    """The enrolled encodings, as they travel in the roster message (integers only): every
    enrollment not followed by a revocation of that person, in log order."""
    entries = sorted([*store.entries(ENROLL_KIND), *store.entries(REVOKE_KIND)], key=lambda e: e.seq)
    gallery: list[dict[str, Any]] = []
    for entry in entries:
        staff = str(entry.data["staff"])
        if entry.kind == REVOKE_KIND:
            gallery = [item for item in gallery if item["staff"] != staff]
        else:
            gallery.append({"staff": staff, "encoding": list(entry.data["encoding"])})
    return gallery


def gallery_version(store: Store) -> int:
    """The log position of the gallery's last change (an enrollment or a revocation)."""
    last = [store.last_audit(kind) for kind in (ENROLL_KIND, REVOKE_KIND)]
    return max((entry.seq for entry in last if entry is not None), default=0)


def gallery(store: Store) -> Gallery | None:
    return Gallery.from_wire(gallery_entries(store))


def roster_body(config: HubConfig, store: Store) -> dict[str, Any]:
    """The retained roster the edges use: staff with their cards, windows, and the face gallery."""
    roster = config.roster()
    return {
        "staff": [{"id": m.id, "name": m.name, "window": m.window, "cards": list(m.cards)} for m in roster],
        "windows": sorted({m.window for m in roster if m.window}),
        "gallery": gallery_entries(store),
    }


def identify(store: Store, photos: list[Path]) -> list[FaceFound]:
    known = gallery(store)
    results = []
    for photo in photos:
        for encoding in encodings_in(photo):
            if known is None:
                results.append(FaceFound(str(photo), None, 0, "unknown"))
                continue
            match = known.best(encoding)
            results.append(FaceFound(str(photo), match.staff if match.decision != "unknown" else None,
                                     round(match.distance * 1000), match.decision))
    return results
