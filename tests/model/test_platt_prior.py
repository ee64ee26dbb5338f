"""The calibration fit: the prior at the identity holds the fit back by its strength."""
import random

import pytest

from components.train.calibrate import fit_calibration_params, fit_platt


def _overconfident(n=500, seed=0):
    """Scores of 0.95 that are right 70 % of the time: far from calibrated."""
    rng = random.Random(seed)
    return [0.95] * n, [rng.random() < 0.7 for _ in range(n)]


def test_no_prior_is_plain_platt_and_a_strong_prior_stays_at_the_identity():
    scores, correct = _overconfident()
    scores = scores[:250] + [0.6] * 250  # two score levels: a and b both identifiable
    platt = fit_platt(scores, correct)
    free = fit_calibration_params(scores, correct, "platt_prior", prior=0.0)
    assert free["a"] == pytest.approx(platt["a"], abs=0.05) and free["b"] == pytest.approx(platt["b"], abs=0.05)
    held = fit_calibration_params(scores, correct, "platt_prior", prior=1e7)
    assert held["a"] == pytest.approx(1.0, abs=1e-3) and held["b"] == pytest.approx(0.0, abs=1e-3)


def test_the_prior_moves_as_far_as_the_evidence_asks():
    """Same boards, stronger prior: the fitted confidence of a 0.95 score stays nearer 0.95."""
    from components.model.regions import calibrate

    scores, correct = _overconfident()
    weak, strong = (fit_calibration_params(scores, correct, "platt_prior", prior=p) for p in (10.0, 3000.0))
    assert calibrate(0.95, weak) < calibrate(0.95, strong) < 0.95
    assert calibrate(0.95, weak) == pytest.approx(0.7, abs=0.03)


def test_an_unknown_method_is_refused_by_name():
    with pytest.raises(ValueError, match="train.calibration: unknown method 'isotonic'"):
        fit_calibration_params([0.9], [True], "isotonic")
