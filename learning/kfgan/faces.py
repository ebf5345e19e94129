"""Facial landmarks (dlib's detector and 68-point shape predictor) and the landmark-guided MLS warp."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from runkit.cli import UserError
from runkit.metrics import progress_bar


class NoFaceError(UserError):
    """No face was found where one was needed."""


class LandmarkDetector:
    """dlib's face detector (HOG, fast; or CNN) and the 68-point shape predictor of `face_recognition_models`."""

    def __init__(self, detector: Literal["hog", "cnn"] = "hog", upsample: int = 1) -> None:
        import dlib  # type: ignore[import-untyped,unused-ignore]

        with warnings.catch_warnings():  # its import of pkg_resources warns of a deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            import face_recognition_models  # type: ignore[import-untyped,unused-ignore]

        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', got {detector!r}")
        self.kind = detector
        self.upsample = upsample
        if detector == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detector_model_location()
            )
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def face_box(self, frame: np.ndarray) -> Any | None:
        """The largest face's box (a dlib rectangle) in an RGB uint8 frame; None without a face."""
        image = np.ascontiguousarray(frame, dtype=np.uint8)
        rects = [getattr(d, "rect", d) for d in self._detector(image, self.upsample)]
        return max(rects, key=lambda r: r.width() * r.height()) if rects else None

    def landmarks_in(self, frame: np.ndarray, box: Any) -> np.ndarray:
        """(68,2) float32 (x, y) landmarks the shape predictor places in `box` of the frame."""
        shape = self._predictor(np.ascontiguousarray(frame, dtype=np.uint8), box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """(68,2) float32 (x, y) landmarks of the largest face in an RGB uint8 frame; None without a face."""
        box = self.face_box(frame)
        return None if box is None else self.landmarks_in(frame, box)


def track_landmarks(
    frames: np.ndarray, detector: LandmarkDetector, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(T,68,2) landmarks and (T,) flags of the frames where the detector found the face.

    Where the detector misses the face, the shape predictor still places the landmarks in the last box
    found (the speaker of a call barely moves; on carphone at CRF 42 the HOG detector finds the face in a
    third of the frames, while the predictor follows it in every frame). The authors keep the last
    landmarks instead, which freezes them for as long as the detector misses. Frames before the first
    detection use the first box found. NoFaceError when no frame has a face.
    """
    count = len(frames)
    landmarks = np.zeros((count, 68, 2), dtype=np.float32)
    found = np.zeros(count, dtype=bool)
    boxes: list[Any] = [None] * count
    last: Any = None
    bar = progress_bar(count, "landmarks", progress)
    try:
        for t in range(count):
            box = detector.face_box(frames[t])
            if box is not None:
                last = box
                found[t] = True
            boxes[t] = last
            bar.update(1)
    finally:
        bar.close()
    if not found.any():
        raise NoFaceError(f"no face found in any of the {count} frames")
    first = int(np.argmax(found))
    for t in range(count):
        landmarks[t] = detector.landmarks_in(frames[t], boxes[t] if t >= first else boxes[first])
    return landmarks, found


def landmark_image(landmarks: np.ndarray, height: int, width: int, sigma: float = 1.0) -> np.ndarray:
    """(H,W) float32 in [0,1]: a Gaussian blob of `sigma` pixels at each landmark (max over landmarks)."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
    inside = (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    image = np.zeros((height, width), dtype=np.float32)
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    for x, y in points[inside]:
        cx, cy = round(float(x)), round(float(y))
        xs = np.clip(cx + offsets, 0, width - 1)
        ys = np.clip(cy + offsets, 0, height - 1)
        gx = np.exp(-((xs - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - y) ** 2) / (2 * sigma**2))
        blob = (gy[:, None] * gx[None, :]).astype(np.float32)
        patch = image[ys[:, None], xs[None, :]]
        image[ys[:, None], xs[None, :]] = np.maximum(patch, blob)
    return image


def mls_affine_warp(
    image: np.ndarray, image_points: np.ndarray, target_points: np.ndarray, alpha: float = 1.0
) -> np.ndarray:
    """Warp `image` so that `image_points` move onto `target_points` (MLS affine, Schaefer et al. 2006).

    Backward map: for every output pixel v the affine map fitted from `target_points` to `image_points`
    (weights 1/|p_i - v|^(2 alpha)) gives where to sample `image` (bilinear, edges repeated).
    """
    height, width = image.shape[:2]
    p = np.asarray(target_points, dtype=np.float64).reshape(-1, 2)
    q = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
    ys, xs = np.mgrid[0:height, 0:width]
    v = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)  # (N,2) x, y
    # squared distances pixel -> control point as a separable sum over x and y (N,K), float32 for speed
    dxs = (np.arange(width, dtype=np.float32)[:, None] - p[None, :, 0].astype(np.float32)) ** 2  # (W,K)
    dys = (np.arange(height, dtype=np.float32)[:, None] - p[None, :, 1].astype(np.float32)) ** 2  # (H,K)
    d2 = (dys[:, None, :] + dxs[None, :, :]).reshape(height * width, -1)
    exact = d2 < 1e-6
    np.maximum(d2, 1e-6, out=d2)
    w = np.reciprocal(d2, out=d2) if alpha == 1.0 else d2 ** np.float32(-alpha)
    w /= w.sum(1, keepdims=True)  # normalised weights: the moments below are weighted means
    # moments of the control points centred on their means (small numbers: float32 is precise enough)
    p_mean, q_mean = p.mean(0), q.mean(0)
    px, py = (p - p_mean).T
    qx, qy = (q - q_mean).T
    features = np.stack([px, py, qx, qy, px * px, px * py, py * py, px * qx, px * qy, py * qx, py * qy], axis=1)
    moments = (w @ features.astype(np.float32)).astype(np.float64)
    mx, my, nx, ny, sxx, sxy, syy, bxx, bxy, byx, byy = moments.T
    # A = sum w p_hat p_hat^T and B = sum w p_hat q_hat^T from the moments (p_hat = p - p*, q_hat = q - q*)
    a00, a01, a11 = sxx - mx * mx, sxy - mx * my, syy - my * my
    b00, b01, b10, b11 = bxx - mx * nx, bxy - mx * ny, byx - my * nx, byy - my * ny
    det = a00 * a11 - a01 * a01
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    dx, dy = v[:, 0] - p_mean[0] - mx, v[:, 1] - p_mean[1] - my
    # (v - p*) A^-1 B + q*, with A^-1 = [[a11, -a01], [-a01, a00]] / det
    ux, uy = (dx * a11 - dy * a01) / det, (dy * a00 - dx * a01) / det
    f = np.stack([ux * b00 + uy * b10 + nx, ux * b01 + uy * b11 + ny], axis=1) + q_mean
    rows, cols = np.nonzero(exact)
    f[rows] = q[cols]  # a pixel on a control point maps onto its partner exactly
    coords = [f[:, 1].reshape(height, width), f[:, 0].reshape(height, width)]
    source = image.astype(np.float64)
    channels = source[..., None] if source.ndim == 2 else source
    out = np.stack(
        [ndimage.map_coordinates(channels[..., c], coords, order=1, mode="nearest") for c in range(channels.shape[-1])],
        axis=-1,
    )
    out = out[..., 0] if image.ndim == 2 else out
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(image.dtype)


def _eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (points 36-41 and 42-47) of (T,68,2) landmarks."""
    left = landmarks[:, 36:42].mean(1)
    right = landmarks[:, 42:48].mean(1)
    return np.asarray(np.linalg.norm(right - left, axis=-1))


def landmark_stability(landmarks: np.ndarray, found: np.ndarray) -> dict[str, float]:
    """Detection rate and frame-to-frame landmark displacement (pixels and fraction of the eye distance)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    both = found[1:] & found[:-1]
    result = {"detection_rate": float(found.mean()) if len(found) else 0.0}
    if not both.any():
        nan = float("nan")
        return result | {"mean_px": nan, "p95_px": nan, "mean_iod": nan, "p95_iod": nan}
    moves = np.linalg.norm(landmarks[1:] - landmarks[:-1], axis=-1)[both]  # (P,68)
    eyes = ((_eye_distance(landmarks[1:]) + _eye_distance(landmarks[:-1])) / 2)[both]
    relative = moves / eyes[:, None]
    return result | {
        "mean_px": float(moves.mean()),
        "p95_px": float(np.percentile(moves, 95)),
        "mean_iod": float(relative.mean()),
        "p95_iod": float(np.percentile(relative, 95)),
    }
