"""Verdicts from confidence: thresholds, their fit on validation digits, and the AUROC."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mnist_core.verdicts import DEFAULT, UNCERTAIN_BELOW, Thresholds, auroc, fit_thresholds


class TestThresholds:
    def test_three_verdicts(self) -> None:
        thresholds = Thresholds(not_a_digit_below=0.4, uncertain_below=0.9)
        assert thresholds.judge(0.1) == "not_a_digit"
        assert thresholds.judge(0.3999) == "not_a_digit"
        assert thresholds.judge(0.4) == "uncertain"
        assert thresholds.judge(0.8999) == "uncertain"
        assert thresholds.judge(0.9) == "digit"
        assert thresholds.judge(1.0) == "digit"

    def test_refuses_thresholds_out_of_order(self) -> None:
        with pytest.raises(ValidationError, match="above uncertain_below"):
            Thresholds(not_a_digit_below=0.95, uncertain_below=0.9)

    def test_equal_thresholds_leave_no_uncertain_band(self) -> None:
        thresholds = Thresholds(not_a_digit_below=0.6, uncertain_below=0.6)
        assert {thresholds.judge(c) for c in (0.59, 0.6, 0.61)} == {"not_a_digit", "digit"}


class TestFit:
    def test_refuses_the_chosen_share_of_validation_digits(self) -> None:
        rng = np.random.default_rng(0)
        confidence = rng.uniform(0.3, 1.0, 10_000)
        probabilities = np.zeros((10_000, 10))
        probabilities[:, 0] = confidence
        probabilities[:, 1:] = ((1 - confidence) / 9)[:, None]
        fitted = fit_thresholds(probabilities, refused_share=0.01)
        assert (confidence < fitted.not_a_digit_below).mean() == pytest.approx(0.01, abs=0.001)
        assert fitted.uncertain_below == UNCERTAIN_BELOW

    def test_a_sharp_model_gets_no_uncertain_band_below_its_cut(self) -> None:
        probabilities = np.full((100, 10), 0.0001)
        probabilities[:, 3] = 0.9991
        fitted = fit_thresholds(probabilities)
        assert fitted.not_a_digit_below == fitted.uncertain_below == pytest.approx(0.9991)

    def test_default_for_models_without_a_fit(self) -> None:
        assert DEFAULT.judge(0.49) == "not_a_digit"
        assert DEFAULT.judge(0.95) == "digit"


class TestAuroc:
    def test_perfect_random_and_reversed(self) -> None:
        assert auroc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0
        assert auroc([0.1, 0.2], [0.9, 0.8, 0.7]) == 0.0
        rng = np.random.default_rng(1)
        same = auroc(rng.random(20_000), rng.random(20_000))
        assert same == pytest.approx(0.5, abs=0.01)

    def test_ties_count_one_half(self) -> None:
        assert auroc([0.5, 0.5], [0.5]) == 0.5
        assert auroc([1.0, 0.5], [0.5]) == 0.75

    def test_matches_counting_pairs(self) -> None:
        rng = np.random.default_rng(2)
        pos, neg = rng.integers(0, 20, 300) / 20, rng.integers(0, 20, 200) / 25
        pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
        assert auroc(pos, neg) == pytest.approx(pairs)

    def test_needs_both_sides(self) -> None:
        with pytest.raises(ValueError, match="both sides"):
            auroc([], [0.5])
