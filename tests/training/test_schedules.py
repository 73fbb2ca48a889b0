"""Schedules pinned as exact tables (posecast.training.schedules and the Trainer's Schedules)."""
from __future__ import annotations

import numpy as np
import pytest

from posecast.training.schedules import kl_beta, teacher_forcing_ratio
from posecast.training.schedules import Schedules
from posecast_testing import tiny_config

SEVENTHS = [0.0, 0.142857142857, 0.285714285714, 0.428571428571, 0.571428571429, 0.714285714286,
            0.857142857143]


# -- teacher forcing ----------------------------------------------------------------------------
def test_tfr_step_mode_lab_defaults() -> None:
    # tfr=1, tfr_sde=10, tfr_d_step=0.1: epoch tfr_sde already trains with 0.9, 0 from epoch 19 on.
    got = [teacher_forcing_ratio(e, tfr=1.0, tfr_sde=10, tfr_d_step=0.1, mode="step") for e in range(25)]
    assert got == [1.0] * 10 + [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0] + [0.0] * 5


def test_tfr_step_mode_defaults_are_the_lab_s() -> None:
    assert teacher_forcing_ratio(9) == 1.0
    assert teacher_forcing_ratio(10) == 0.9
    assert teacher_forcing_ratio(19) == 0.0


def test_tfr_step_mode_small_preset() -> None:
    got = [teacher_forcing_ratio(e, tfr=1.0, tfr_sde=3, tfr_d_step=0.2) for e in range(10)]
    assert got == [1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0]


def test_tfr_step_mode_other_start_and_no_decay() -> None:
    assert [teacher_forcing_ratio(e, tfr=0.5, tfr_sde=0, tfr_d_step=0.1) for e in range(7)] == \
        [0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0]
    assert [teacher_forcing_ratio(e, tfr=0.7, tfr_sde=2, tfr_d_step=0.0) for e in range(5)] == [0.7] * 5


def test_tfr_linear_mode() -> None:
    # 1 up to tfr_sde, then linear to 0 at the last epoch (num_epoch - 1)
    got = [teacher_forcing_ratio(e, tfr=1.0, tfr_sde=0, mode="linear", num_epoch=11) for e in range(11)]
    assert got == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    got = [teacher_forcing_ratio(e, tfr=1.0, tfr_sde=10, mode="linear", num_epoch=21) for e in range(21)]
    assert got[:11] == [1.0] * 11
    assert got[15] == 0.5 and got[20] == 0.0
    assert all(a > b for a, b in zip(got[10:], got[11:]))  # strictly falling after tfr_sde
    # tfr_sde at or past the last epoch: tfr throughout, 0 after it
    assert [teacher_forcing_ratio(e, tfr=0.8, tfr_sde=4, mode="linear", num_epoch=5) for e in range(6)] == \
        [0.8] * 5 + [0.0]


def test_tfr_unknown_mode() -> None:
    with pytest.raises(ValueError, match="tfr_mode"):
        teacher_forcing_ratio(0, mode="cosine")


# -- KL annealing -------------------------------------------------------------------------------
def test_cyclical_lab_defaults_table() -> None:
    # 70 epochs, 10 cycles of 7 epochs, ratio 1: 0, 1/7, ..., 6/7, then back to 0 at epoch 7.
    got = [kl_beta(e, 70, kind="Cyclical", n_cycle=10, ratio=1.0) for e in range(70)]
    assert got == SEVENTHS * 10
    assert kl_beta(7, 70) == 0.0 and kl_beta(1, 70) == 0.142857142857  # defaults are the lab's


def test_cyclical_ratio_half() -> None:
    # the rise takes half of each 7-epoch cycle (3.5 epochs), then beta stays 1
    got = [kl_beta(e, 70, kind="Cyclical", n_cycle=10, ratio=0.5) for e in range(14)]
    assert got == [0.0, 0.285714285714, 0.571428571429, 0.857142857143, 1.0, 1.0, 1.0] * 2


def test_cyclical_small_and_tiny_presets() -> None:
    assert [kl_beta(e, 10, n_cycle=2) for e in range(10)] == [0.0, 0.2, 0.4, 0.6, 0.8] * 2
    assert [kl_beta(e, 2, n_cycle=1) for e in range(2)] == [0.0, 0.5]


def test_monotonic_is_one_rise_then_one() -> None:
    got = [kl_beta(e, 10, kind="Monotonic", n_cycle=5, ratio=0.5) for e in range(10)]  # n_cycle ignored
    assert got == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0]
    lab = [kl_beta(e, 70, kind="Monotonic", n_cycle=10, ratio=1.0) for e in range(70)]
    assert lab == [round(e / 70, 12) for e in range(70)]
    # the report's for/else bug made Monotonic all ones (= None): it must not be
    assert lab != [1.0] * 70 and got != [1.0] * 10


def test_none_is_all_ones() -> None:
    assert [kl_beta(e, 70, kind="None") for e in range(70)] == [1.0] * 70


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kl_anneal_type"):
        kl_beta(0, 10, kind="Linear")


def _lab_frange_cycle_linear(n_iter: int, start: float = 0.0, stop: float = 1.0, n_cycle: int = 4,
                             ratio: float = 0.5) -> np.ndarray:
    """The lab template's reference implementation, for comparison."""
    L = np.ones(n_iter) * stop
    period = n_iter / n_cycle
    step = (stop - start) / (period * ratio)
    for c in range(n_cycle):
        v, i = start, 0
        while v <= stop and (int(i + c * period) < n_iter):
            L[int(i + c * period)] = v
            v += step
            i += 1
    return L


@pytest.mark.parametrize("n_iter,n_cycle,ratio", [(70, 10, 1.0), (70, 10, 0.5), (10, 2, 1.0),
                                                  (12, 3, 0.25), (100, 4, 0.5), (30, 1, 1.0)])
def test_cyclical_matches_the_lab_reference(n_iter: int, n_cycle: int, ratio: float) -> None:
    ref = _lab_frange_cycle_linear(n_iter, n_cycle=n_cycle, ratio=ratio)
    got = [kl_beta(e, n_iter, kind="Cyclical", n_cycle=n_cycle, ratio=ratio) for e in range(n_iter)]
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_kl_beta_per_step_progress() -> None:
    # per step: 2 epochs x 5 steps, one cycle -> a rise over 10 steps
    assert [kl_beta(s, 10, n_cycle=1) for s in range(10)] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
                                                                0.8, 0.9]


# -- the Trainer's view of a config --------------------------------------------------------------
def test_trainer_schedules_follow_the_config() -> None:
    cfg = tiny_config(num_epoch=20, tfr_sde=10, tfr_d_step=0.1, kl_anneal_cycle=2, kl_anneal_ratio=0.5)
    s = Schedules(cfg, steps_per_epoch=4)
    assert [s.tfr(e) for e in (9, 10, 19)] == [1.0, 0.9, 0.0]
    assert [s.beta(e) for e in range(10)] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert s.beta(10) == 0.0
    step = Schedules(tiny_config(num_epoch=2, kl_anneal_cycle=1, kl_anneal_per="step"), steps_per_epoch=4)
    assert [step.beta(e, i) for e in range(2) for i in range(4)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.625,
                                                                      0.75, 0.875]
    lin = Schedules(tiny_config(num_epoch=11, tfr_sde=0, tfr_mode="linear"), steps_per_epoch=1)
    assert lin.tfr(5) == 0.5


def test_recon_until_switches_to_the_mse_after_its_fraction_of_the_epochs() -> None:
    def terms(**kw) -> list[str]:
        return [Schedules(tiny_config(num_epoch=5, **kw), steps_per_epoch=1).recon(e) for e in range(5)]
    assert terms(recon="l1", recon_until=0.5) == ["l1", "l1", "l1", "mse", "mse"]  # epochs 0-2 < 2.5
    assert terms(recon="l1", recon_until=0.4) == ["l1", "l1", "mse", "mse", "mse"]
    assert terms(recon="l1") == ["l1"] * 5  # recon_until 1: recon throughout
    assert terms(recon="l1", recon_until=0.0) == ["mse"] * 5
    assert terms(recon="mse", recon_until=0.5) == ["mse"] * 5
    fifty = Schedules(tiny_config(num_epoch=50, recon="l1", recon_until=0.14), steps_per_epoch=1)
    assert [fifty.recon(e) for e in range(50)].count("l1") == 7  # 0.14 * 50 is 7.000000000000001 in floats


def test_per_step_beta_with_epochs_of_different_lengths() -> None:
    # data.fast_train: 2 steps in epoch 0, 3 in epochs 1 and 2 (the sequence's last count repeats)
    cfg = tiny_config(num_epoch=3, kl_anneal_type="Monotonic", kl_anneal_ratio=1.0, kl_anneal_per="step")
    s = Schedules(cfg, steps_per_epoch=[2, 3])
    assert [s.steps_before(e) for e in range(4)] == [0, 2, 5, 8]
    assert [s.beta(e, i) for e, n in enumerate([2, 3, 3]) for i in range(n)] == [round(p / 8, 12) for p in range(8)]
    assert Schedules(cfg, steps_per_epoch=[3, 3, 3]).beta(1, 2) == Schedules(cfg, steps_per_epoch=3).beta(1, 2) == round(5 / 9, 12)
