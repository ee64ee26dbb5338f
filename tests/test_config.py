"""The config's help is data: every key has one, it does not age, and `defectqa config show` prints it."""
import dataclasses
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components import config
from flows.cli import app

runner = CliRunner()

HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", re.IGNORECASE)
DATE = re.compile(r"\b(19|20)\d\d-(0[1-9]|1[0-2])(-\d\d)?\b")
APPROX = re.compile(r"~\s*\d")  # "~0.17 s": a measured figure


def every_field():
    """(key, dataclasses.Field) for every top-level field and every field of every section."""
    cfg = config.Config()
    for f in dataclasses.fields(cfg):
        yield f.name, f
        part = getattr(cfg, f.name)
        if dataclasses.is_dataclass(part):
            yield from ((f"{f.name}.{g.name}", g) for g in dataclasses.fields(part))


def section_keys() -> set[str]:
    return {key for key, _ in every_field() if "." in key}


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_the_sections_are_the_config_dataclasses():
    assert set(config.sections()) >= {"paths", "data", "qa", "model", "train", "eval", "gate", "serve"}
    assert "registered_model" not in config.sections() and "experiment" not in config.sections()


def test_every_field_has_help():
    missing = [key for key, f in every_field() if not str(f.metadata.get("help", "")).strip()]
    assert not missing, f"fields without help: {missing}"
    assert len(section_keys()) > 100  # every section was walked, not just the top level


def test_help_carries_no_hash_date_or_measured_figure():
    # The patterns catch what they are meant to, so an empty result below means something.
    assert HASH.search("since commit 94c1537") and DATE.search("measured 2026-11-27") and APPROX.search("~0.17 s")
    assert not HASH.search("a 640 x 640 board, 4096 * 4096 pixels") and not DATE.search("(0-255), 1-95")
    dated = {key: f.metadata["help"] for key, f in every_field()
             if HASH.search(f.metadata["help"]) or DATE.search(f.metadata["help"]) or APPROX.search(f.metadata["help"])}
    assert not dated


def test_help_is_short():
    # One or two sentences: history and measurements belong in docs/RESULTS.md.
    long = {key: len(f.metadata["help"]) for key, f in every_field() if len(f.metadata["help"]) > 400}
    assert not long


def test_describe_covers_every_field_once_with_value_default_type_and_help():
    cfg = config.Config()
    rows = config.describe(cfg)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == {key for key, _ in every_field() if key not in config.sections()}
    assert {"registered_model", "experiment", "train.sft_lr", "gate.champion_margins"} <= set(keys)
    helps = dict(every_field())
    for r in rows:
        assert set(r) == {"key", "value", "default", "type", "help"}
        assert r["value"] == r["default"], r["key"]  # a fresh Config holds the defaults
        assert r["help"] == helps[r["key"]].metadata["help"] and r["type"]
    by = {r["key"]: r for r in rows}
    assert by["data.holdout_groups"]["value"] == ("group92000",) and by["train.sft_lr"]["type"] == "float"


def test_describe_one_section_and_overrides():
    cfg = config.load(None, ["train.sft_lr=0.1", "data.calib_groups=group1,group2"])
    train = config.describe(cfg, "train")
    assert [r["key"] for r in train] == [f"train.{f.name}" for f in dataclasses.fields(config.TrainConfig)]
    lr = next(r for r in train if r["key"] == "train.sft_lr")
    assert lr["value"] == 0.1 and lr["default"] == 5e-4
    calib = next(r for r in config.describe(cfg, "data") if r["key"] == "data.calib_groups")
    assert calib["value"] == ("group1", "group2") and calib["default"] == ("group77000",)


def test_describe_refuses_an_unknown_section():
    with pytest.raises(ValueError, match="unknown config section 'nope'; sections: paths, data"):
        config.describe(config.Config(), "nope")


def test_config_show_train_prints_every_key_with_its_help():
    result = runner.invoke(app, ["config", "show", "train", "--params", "none"])
    assert result.exit_code == 0, result.output
    text = normalised(result.output)
    for r in config.describe(config.Config(), "train"):
        assert f"{r['key']} " in result.output, r["key"]
        assert normalised(r["help"]) in text, r["key"]
    assert "eval.iou" not in {line.split(" ")[0] for line in result.output.splitlines()}  # one section only
    line = next(line for line in result.output.splitlines() if line.startswith("train.sft_lr "))
    assert line.split()[1] == "0.0005" and line.count("0.0005") == 1  # default not repeated when unchanged


def test_config_show_marks_a_changed_value_with_its_default():
    result = runner.invoke(app, ["config", "show", "train", "--params", "none", "--set", "train.sft_lr=0.1"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("train.sft_lr "))
    assert line.split()[1:3] == ["0.1", "0.0005"], line
    unchanged = next(line for line in result.output.splitlines() if line.startswith("train.dpo_lr "))
    assert unchanged.split()[1] == "5e-05" and not unchanged.split()[2][0].isdigit()


def test_config_show_everything_includes_top_level_keys_and_long_values():
    result = runner.invoke(app, ["config", "show", "--params", "none",
                                 "--set", "gate.champion_margins=count_exact:0.04"])
    assert result.exit_code == 0, result.output
    starts = {line.split(" ")[0] for line in result.output.splitlines()}
    assert {"registered_model", "experiment", "paths.workdir", "serve.blur_check"} <= starts
    margins = next(line for line in result.output.splitlines() if line.startswith("gate.champion_margins "))
    assert "count_exact:0.04" in margins and "(default: " in margins and "count_exact:0.05" in margins


def test_config_show_unknown_section_names_the_sections():
    result = runner.invoke(app, ["config", "show", "training", "--params", "none"])
    assert result.exit_code != 0
    assert "unknown config section 'training'" in result.output
    for name in config.sections():
        assert name in result.output


def test_results_keep_their_hand_written_tail(tmp_path):
    from components.evaluation.ablate import HAND_WRITTEN, write_results

    out = tmp_path / "RESULTS.md"
    write_results(out, "# Ablation results\n\nold table\n")
    assert out.read_text() == "# Ablation results\n\nold table\n"  # no marker: the file is what was generated
    tail = f"{HAND_WRITTEN}\n\n## Why some defaults are what they are\n\n- `train.bf16`: a reason.\n"
    out.write_text(out.read_text() + "\n" + tail)
    write_results(out, "# Ablation results\n\nnew table\n")
    text = out.read_text()
    assert "new table" in text and "old table" not in text and text.endswith(tail)
    write_results(out, "# Ablation results\n\nnewer table\n")
    assert out.read_text() == "# Ablation results\n\nnewer table\n\n" + tail  # kept once, not stacked


def test_the_docs_results_file_has_the_marker_before_the_why_section():
    from components.evaluation.ablate import HAND_WRITTEN

    text = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
    assert HAND_WRITTEN in text
    assert text.index(HAND_WRITTEN) < text.index("## Why some defaults are what they are")
    for key in ("train.bf16", "serve.blur_check", "gate.champion_margins"):
        assert f"`{key}`" in text.split(HAND_WRITTEN)[1]
