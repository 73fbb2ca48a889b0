"""Typed configuration (posecast.config): recipes, validation messages, YAML in and out."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from posecast import config as cfgmod
from posecast.config import ConfigError
from posecast_testing import OLD_LAYOUT

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("best", "best_v1", "demo", "lab", "small", "tiny")


def test_the_recipes_are_the_yaml_files_in_the_package() -> None:
    assert cfgmod.PRESETS == RECIPES
    assert sorted(p.stem for p in (REPO / "src" / "posecast" / "recipes").glob("*.yaml")) == list(RECIPES)
    # one place for the recipes: the checkout's configs/ holds only best.yaml, which names the packaged
    # recipe (`--config configs/best.yaml` as before) and copies none of it, so nothing can drift
    assert sorted(p.name for p in (REPO / "configs").iterdir()) == ["best.yaml"]
    assert cfgmod.read_yaml(REPO / "configs" / "best.yaml") == {"preset": "best"}
    assert cfgmod.load(REPO / "configs" / "best.yaml") == cfgmod.preset("best")
    text = (REPO / "pyproject.toml").read_text()  # shipped in the wheel, so `--preset best` works anywhere
    assert '[tool.setuptools.package-data]\n' in text and '"posecast.recipes" = ["*.yaml"]' in text


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_load_by_name_from_any_folder(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the checkout: the recipes are found beside the package
    cfg = cfgmod.preset(name).validate()
    assert cfg.preset == name
    cfg.to_yaml(tmp_path / "c.yaml")
    assert cfgmod.load(tmp_path / "c.yaml") == cfg
    assert cfgmod.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "over.yaml").write_text(f"preset: {name}\n")  # a user's file starting from the recipe
    assert cfgmod.load(tmp_path / "over.yaml") == cfg


def test_recipes_start_from_their_base_recipe() -> None:
    small, best, demo = cfgmod.preset("small"), cfgmod.preset("best"), cfgmod.preset("demo")
    assert (best.model.arch, best.model.output, best.model.prev_frame_cond, best.optim.num_epoch) == \
        ("unet", "warped_first", False, 52)
    assert best.data.shift_x == 8 and best.inference.mirror_average and best.schedule.kl_reduction == "mean"
    # best names only some fields: the rest come from small (its base), then from the defaults
    assert (best.optim.milestones, best.schedule.kl_anneal_cycle) == (small.optim.milestones, 2)
    assert (demo.model.output, demo.model.down, demo.data.train_vi_len, demo.optim.num_epoch) == \
        ("masked_first", 1, 8, 40)
    assert demo.data.val_vi_len == small.data.val_vi_len == 630


def test_a_recipe_that_starts_from_itself_is_refused(tmp_path: Path, monkeypatch) -> None:
    from posecast import recipes

    (tmp_path / "a.yaml").write_text("preset: b\n")
    (tmp_path / "b.yaml").write_text("preset: a\n")
    monkeypatch.setattr(recipes, "RECIPES_DIR", tmp_path)
    monkeypatch.setattr(recipes, "PRESETS", ("a", "b"))
    with pytest.raises(ConfigError, match=r"^preset: recipe 'a' starts from itself \(a -> b -> a\)"):
        recipes.recipe_data("a")


def test_lab_preset_is_the_lab_s_defaults() -> None:
    cfg = cfgmod.preset("lab")
    assert (cfg.data.frame_H, cfg.data.frame_W, cfg.data.train_vi_len, cfg.data.val_vi_len) == (32, 64, 16, 630)
    assert (cfg.model.F_dim, cfg.model.L_dim, cfg.model.N_dim, cfg.model.D_dim) == (128, 32, 12, 192)
    o, s = cfg.optim, cfg.schedule
    assert (o.num_epoch, o.lr, s.tfr, s.tfr_sde, s.tfr_d_step) == (70, 0.001, 1.0, 10, 0.1)
    assert (s.kl_anneal_type, s.kl_anneal_cycle, s.kl_anneal_ratio) == ("Cyclical", 10, 1.0)
    assert (cfg.data.fast_partial, cfg.data.fast_train_epoch, cfg.data.batch_size) == (0.4, 5, 2)


def test_presets_run_the_fast_path_where_the_hardware_has_it() -> None:
    """lab and small: bf16 autocast where native (auto) and channels_last; tiny (tests): fp32, NCHW."""
    for name in ("lab", "small"):
        t = cfgmod.preset(name).runtime
        assert (t.precision, t.channels_last) == ("auto", True), name
    t = cfgmod.preset("tiny").runtime
    assert (t.precision, t.channels_last) == ("fp32", False)
    for value in ("auto", "fp32", "bf16"):
        cfgmod.override(cfgmod.preset("tiny"), precision=value).validate()


def test_yaml_round_trip_of_every_kind_of_value(tmp_path: Path) -> None:
    cfg = cfgmod.override(cfgmod.preset("small"), clip_stride=3, grad_clip=None, milestones=[1, 4, 7],
                          fast_train=True, max_time=12.5, prior="learned", tfr_mode="linear", lr=2.5e-4)
    text = cfg.to_yaml(tmp_path / "c.yaml")
    assert yaml.safe_load(text) == cfg.to_dict()
    back = cfgmod.load(tmp_path / "c.yaml")
    assert back == cfg and back.optim.lr == 2.5e-4 and back.optim.grad_clip is None


def test_partial_yaml_starts_from_its_preset(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("preset: small\noptim:\n  num_epoch: 4\nschedule:\n  tfr_sde: 1\n")
    cfg = cfgmod.load(tmp_path / "c.yaml").validate()
    small = cfgmod.preset("small")
    assert cfg.optim.num_epoch == 4 and cfg.model == small.model and cfg.schedule.kl_anneal_cycle == 2
    (tmp_path / "empty.yaml").write_text("")
    assert cfgmod.load(tmp_path / "empty.yaml") == cfgmod.preset("lab")


def test_override_flat_and_dotted() -> None:
    cfg = cfgmod.override(cfgmod.preset("tiny"), lr=0.01, **{"model.N_dim": 3, "data.batch_size": 5})
    assert cfg.optim.lr == 0.01 and cfg.model.N_dim == 3 and cfg.data.batch_size == 5
    assert cfgmod.preset("tiny").optim.lr == 0.001  # a copy
    assert cfgmod.find_field("tfr_sde") == "schedule" and cfgmod.find_field("F_dim") == "model"
    with pytest.raises(ConfigError, match="nonsense"):
        cfgmod.override(cfgmod.preset("tiny"), nonsense=1)
    with pytest.raises(ConfigError, match="bogus"):
        cfgmod.override(cfgmod.preset("tiny"), **{"bogus.lr": 1})


@pytest.mark.parametrize("field,value", [
    ("frame_H", 2), ("frame_W", 3), ("train_vi_len", 1), ("val_vi_len", 1), ("clip_stride", 0),
    ("partial", 0.0), ("partial", 1.5), ("fast_partial", 0.0), ("fast_train_epoch", -1), ("batch_size", 0),
    ("F_dim", 0), ("L_dim", 0), ("N_dim", 0), ("D_dim", 0), ("prior", "gaussian"), ("output", "delta"),
    ("num_epoch", 0), ("lr", 0.0), ("lr", -1e-3), ("optim", "SGD"), ("gamma", 0.0), ("gamma", 2.0),
    ("grad_clip", 0.0), ("per_save", 0), ("tfr", 1.5), ("tfr", -0.1), ("tfr_d_step", -0.1), ("tfr_sde", 2),
    ("tfr_mode", "cosine"), ("tfr_flip", "sample"), ("kl_anneal_type", "Linear"), ("kl_anneal_cycle", 0),
    ("kl_anneal_cycle", 3), ("kl_anneal_ratio", 0.0), ("kl_anneal_ratio", 1.5), ("kl_anneal_per", "batch"),
    ("kl_reduction", "sum"), ("recon", "huber"), ("recon_until", 1.5), ("recon_until", -0.1), ("z_infer", "mean"), ("precision", "fp16"), ("max_time", 0.0), ("val_every", 0),
    ("clip_order", "shuffled"), ("anchor", "far"), ("anchor", "random"), ("anchor_range", -1),
    ("shift_x", -1), ("shift_x", 33), ("shift_mask", True), ("pose_input", "negated"), ("threads", 0),
])
def test_validation_names_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError) as info:  # choices fail when read, the rest in validate()
        cfgmod.override(cfgmod.preset("tiny"), **{field: value}).validate()  # tiny: num_epoch 2, tfr_sde 1
    section = cfgmod.find_field(field)
    assert str(info.value).startswith(f"{section}.{field}:"), str(info.value)


def test_cycles_per_step_need_not_fit_in_epochs() -> None:
    cfgmod.override(cfgmod.preset("tiny"), kl_anneal_cycle=5, kl_anneal_per="step").validate()
    cfgmod.override(cfgmod.preset("tiny"), kl_anneal_cycle=5, kl_anneal_type="Monotonic").validate()
    cfgmod.override(cfgmod.preset("tiny"), num_epoch=1, tfr_sde=0).validate()


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="optim.*'learning_rate'"):
        cfgmod.from_dict({"optim": {"learning_rate": 1}})
    with pytest.raises(ConfigError, match="optimizer"):
        cfgmod.from_dict({"optimizer": {}})
    with pytest.raises(ConfigError, match="preset.*'huge'"):
        cfgmod.from_dict({"preset": "huge"})
    with pytest.raises(ConfigError, match="unknown config field 'nope'"):
        cfgmod.find_field("nope")


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path / "missing.yaml")):
        cfgmod.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=str(tmp_path / "bad.yaml")):
        cfgmod.load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        cfgmod.load(tmp_path / "list.yaml")


@pytest.mark.parametrize("text,field,meant", [("optim:\n  lr: 1e-3\n", "lr", 0.001),
                                              ("optim:\n  num_epoch: ten\n", "num_epoch", None)])
def test_wrongly_typed_yaml_values(text: str, field: str, meant, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(text)
    try:
        cfg = cfgmod.load(tmp_path / "c.yaml").validate()
    except ConfigError as exc:
        assert f"optim.{field}" in str(exc)
    else:  # or read as the number it means
        assert meant is not None and getattr(cfg.optim, field) == meant


def test_anchor_range_needs_consecutive_clips() -> None:
    base = dict(anchor="random", first_frame_cond=True, anchor_range=5)
    cfgmod.override(cfgmod.preset("tiny"), **base).validate()
    with pytest.raises(ConfigError, match="data.anchor_range"):
        cfgmod.override(cfgmod.preset("tiny"), clip_order="random", **base).validate()


def test_field_types_come_from_the_annotations() -> None:
    """One source for a field's type: YAML checking and the command-line flags both read it."""
    ft = cfgmod.FIELD_TYPES
    assert set(ft) == {f"{s}.{k}" for s, d in cfgmod.Config().to_dict().items() if isinstance(d, dict) for k in d}
    assert ft["data.clip_stride"] == cfgmod.FieldType((int,), True)
    assert ft["optim.grad_clip"] == cfgmod.FieldType((float,), True)
    assert ft["runtime.threads"] == cfgmod.FieldType((int, str), True, choices=("auto",))
    assert ft["optim.milestones"] == cfgmod.FieldType((list,), False, int)
    assert ft["model.first_frame_cond"] == cfgmod.FieldType((bool,), False)
    assert ft["optim.lr"] == cfgmod.FieldType((float,), False)
    assert [k for k, t in ft.items() if t.optional] == ["data.clip_stride", "optim.grad_clip", "optim.minutes",
                                                        "runtime.threads", "runtime.max_time"]
    assert ft["runtime.precision"] == cfgmod.FieldType((str,), False, choices=("auto", "fp32", "bf16"))
    assert ft["schedule.kl_anneal_type"].choices == ("Cyclical", "Monotonic", "None")
    assert ft["model.output"].choices[-1] == "warped_first"


def test_flat_and_config_diff() -> None:
    a = cfgmod.preset("tiny")
    b = cfgmod.override(a, lr=0.01, F_dim=4, max_time=60.0)
    assert cfgmod.flat(a)["optim.lr"] == 0.001 and cfgmod.flat(a)["preset"] == "tiny"
    assert cfgmod.flat(a) == cfgmod.flat(a.to_dict())
    assert cfgmod.config_diff(a, b) == {"model.F_dim": (8, 4), "optim.lr": (0.001, 0.01),
                                        "runtime.max_time": (None, 60.0)}
    assert list(cfgmod.config_diff(a, b, sections=["model"])) == ["model.F_dim"]
    assert list(cfgmod.config_diff(a, b, ignore=cfgmod.BUDGET_FIELDS)) == ["model.F_dim", "optim.lr"]
    c = cfgmod.from_dict({**a.to_dict(), "preset": "small"})
    assert "preset" in cfgmod.config_diff(a, c) and "preset" not in cfgmod.config_diff(a, c, sections=["model"])
    partial = {"model": {"F_dim": 8}}  # a field one side lacks
    assert cfgmod.config_diff(partial, a, sections=["model"], missing="?")["model.L_dim"] == ("?", 4)


def test_the_older_layout_with_a_train_section_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(OLD_LAYOUT, sort_keys=False))
    for read in (lambda: cfgmod.from_dict(OLD_LAYOUT), lambda: cfgmod.load(tmp_path / "old.yaml")):
        with pytest.raises(ConfigError) as info:
            read()
        msg = str(info.value)
        assert msg.startswith("train: the older config layout") and "optim, schedule, runtime and inference" in msg
        assert "\n" not in msg
    with pytest.raises(ConfigError, match="unknown section 'train'"):  # nor as a dotted override
        cfgmod.override(cfgmod.preset("tiny"), **{"train.lr": 0.01})


@pytest.mark.parametrize("field, value", [("precision", "fp16"), ("kl_anneal_type", "Linear"), ("optim", "SGD"),
                                          ("output", "blend"), ("clip_order", "shuffled"), ("z_infer", "mean")])
def test_choices_come_from_the_literal_annotations(field: str, value: str) -> None:
    key = f"{cfgmod.find_field(field)}.{field}"
    allowed = cfgmod.FIELD_TYPES[key].choices
    with pytest.raises(ConfigError, match=f"^{key}: .*{allowed[-1]}, got '{value}'") as info:
        cfgmod.override(cfgmod.preset("tiny"), **{field: value})
    assert all(str(v) in str(info.value) for v in allowed)
    built = cfgmod.preset("tiny")  # a Config built in code is checked by validate()
    setattr(getattr(built, cfgmod.find_field(field)), field, value)
    with pytest.raises(ConfigError, match=f"^{key}: "):
        built.validate()


def test_removed_fields_are_refused_by_name() -> None:
    """optim.weight_decay changed nothing any recipe or test used (AdamW takes torch's default)."""
    with pytest.raises(ConfigError, match=r"^optim: unknown field\(s\) \['weight_decay'\]"):
        cfgmod.from_dict({"optim": {"weight_decay": 0.0}})
    with pytest.raises(ConfigError, match=r"^data: unknown field\(s\) \['max_val_sequences'\]"):
        cfgmod.from_dict({"data": {"max_val_sequences": None}})
