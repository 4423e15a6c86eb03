"""The probe baseline a detection head must beat: a linear classifier of each window token alone
(class or background; standardised features, logistic regression), then each run of consecutive
windows of one arg-max class merged into a gesture (`segments.merge_steps`)."""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .score import Segment
from .segments import DecodeSettings, StepGrid, encode_targets, merge_steps


class WindowProbe:
    """Per-window class-or-background probabilities from a linear model fitted on labelled sequences."""

    def __init__(self, num_classes: int, c: float = 1.0, max_iter: int = 1000) -> None:
        self.num_classes = num_classes
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))

    def fit(self, tokens: Sequence[np.ndarray], gestures: Sequence[Sequence[tuple[int, int, int]]],
            grid: StepGrid) -> "WindowProbe":
        """Fit on sequences of window tokens (T, D) and their gestures (class, start, end)."""
        labels = [encode_targets(g, len(t), grid)[0] for t, g in zip(tokens, gestures)]
        y = np.concatenate(labels)                                            # (sum T,)
        if len(np.unique(y)) < 2:
            raise ValueError("the probe baseline needs windows of at least two classes (background included) "
                             "to fit; the training sequences hold one")
        self.model.fit(np.concatenate(tokens), y)
        return self

    def probs(self, tokens: np.ndarray) -> np.ndarray:
        """(T, C + 1) probabilities, column 0 background; classes never seen in training get 0."""
        out = np.zeros((len(tokens), self.num_classes + 1))                   # (T, C+1)
        out[:, self.model.classes_] = self.model.predict_proba(tokens)
        return out

    def segments(self, tokens: np.ndarray, grid: StepGrid, settings: DecodeSettings, video_id: str,
                 classes: Sequence[Hashable] | None = None) -> list[Segment]:
        """The gestures of one sequence: per-window arg-max runs merged (`merge_steps`)."""
        return merge_steps(self.probs(tokens), grid, settings, video_id, classes)
