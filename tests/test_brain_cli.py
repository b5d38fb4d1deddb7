"""`llmrouter train`, `calibrate` and `eval` end to end on small synthetic data."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmrouter.brain import LearnedPredictor
from llmrouter.cli.main import main
from llmrouter.policy import load_policy
from llmrouter.tokens import encode

POLICY = """\
# a test policy
version: 1
backends:
  - name: small
    provider: openai
    model: small-model
    quality: 0.4
    context_window: 8192
    price: {input_per_million: 0.1, output_per_million: 0.2}
  - name: big
    provider: openai
    model: big-model
    quality: 0.8
    context_window: 8192
    price: {input_per_million: 5, output_per_million: 15}
routing:
  quality_floor: 0.7
"""

EASY = "What colour is the sky on a clear day?"
HARD = (
    "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain "
    "precisely which steps of the standard sieve arguments fail, with full rigour."
)


def _records(n: int, seed: int, small_ability: float) -> list[dict[str, Any]]:
    """Scores drawn from the shipped predictor's own difficulties, for two backends."""
    predictor = LearnedPredictor()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = EASY if rng.random() < 0.5 else HARD
        text = f"{text} (variant {i})"
        d = predictor.profile(text, encode(text)).state.difficulty  # type: ignore[union-attr]
        p_small = 1 / (1 + math.exp(-(small_ability - d)))
        p_big = 1 / (1 + math.exp(-(2.5 - d)))
        out.append(
            {
                "id": f"r{i}",
                "prompt": text,
                "scores": {
                    "small": float(rng.random() < p_small),
                    "big": float(rng.random() < p_big),
                },
                "usage": {
                    "small": {"prompt_tokens": 30, "completion_tokens": 100},
                    "big": {"prompt_tokens": 30, "completion_tokens": 100},
                },
            }
        )
    return out


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _records(120, 0, -1.0)) + "\n")
    return {"policy": policy, "data": data, "dir": tmp_path}


def test_calibrate_writes_a_readable_policy(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "calibrated.yaml"
    code = main(
        [
            "calibrate",
            "--policy",
            str(files["policy"]),
            "--data",
            str(files["data"]),
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["calibrated"]) == {"small", "big"}
    raw = yaml.safe_load(out.read_text())
    assert raw["routing"] == {"quality_floor": 0.7}
    small, big = raw["backends"]
    assert small["price"] == {"input_per_million": 0.1, "output_per_million": 0.2}
    assert {"ability", "discrimination", "math", "code"} <= set(small["calibration"])
    assert big["calibration"]["ability"] > small["calibration"]["ability"]
    policy = load_policy(out)
    assert policy.backends[0].calibration == small["calibration"]
    shares = summary["at_floor"]["backends"]
    assert shares["small"]["share_at_floor"] + shares["big"]["share_at_floor"] == pytest.approx(1)


def test_calibrate_reports_shares_on_unlabelled_traffic(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = files["data"].read_text()
    traffic = [{"id": f"t{i}", "prompt": f"{HARD} (traffic {i})"} for i in range(20)]
    data = files["dir"] / "mixed.jsonl"
    data.write_text(labelled + "\n".join(json.dumps(r) for r in traffic) + "\n")
    out = files["dir"] / "calibrated.yaml"
    args = ["--policy", str(files["policy"]), "--data", str(data), "--out", str(out)]
    assert main(["calibrate", *args, "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibrated"]["small"]["samples"] == 120
    shares = summary["at_floor"]["traffic"]
    assert shares["prompts"] == 20
    assert sum(shares["share_at_floor"].values()) == pytest.approx(1)
    # Hard-only traffic goes to the big backend more often than the mixed labelled sample.
    assert (
        shares["share_at_floor"]["big"] >= summary["at_floor"]["backends"]["big"]["share_at_floor"]
    )
    assert summary["at_floor"]["backends"]["big"]["scored_prompts"] == 120
    # The text says the same, traffic included.
    assert main(["calibrate", *args, "--no-progress"]) == 0
    text = capsys.readouterr().out
    big = shares["share_at_floor"]["big"]
    assert "on all 140 prompts:" in text and "on its 120 scored prompts" in text
    assert f"on the 20 unscored (traffic) prompts alone: small {1 - big:.0%}, big {big:.0%}" in text


def test_calibrate_judges_a_conversation_by_its_last_user_message(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """As the router does: earlier turns change the prompt's token count, not its judgement,
    so a conversation calibrates exactly as its last user message alone does."""
    records = _records(120, 0, -1.0)
    chats = [
        {
            **{k: v for k, v in r.items() if k != "prompt"},
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": f"{HARD} Also: {EASY}"},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": r["prompt"]},
            ],
        }
        for r in records
    ]
    fitted = []
    for name, rows in (("alone", records), ("chats", chats)):
        data = files["dir"] / f"{name}.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        out = files["dir"] / f"{name}.yaml"
        args = ["--policy", str(files["policy"]), "--data", str(data), "--out", str(out)]
        assert main(["calibrate", *args, "--json", "--no-progress"]) == 0
        capsys.readouterr()
        fitted.append([b["calibration"] for b in yaml.safe_load(out.read_text())["backends"]])
    assert fitted[0] == fitted[1]


def test_eval_reports_curve_metrics_and_baselines(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "eval",
            "--policy",
            str(files["policy"]),
            "--data",
            str(files["data"]),
            "--json",
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prompts"] == 120
    assert report["reference"] in ("small", "big")
    base = report["baselines"]
    assert set(base) >= {"single", "random", "zero_router", "oracle"}
    assert base["oracle"]["quality"] >= max(s["quality"] for s in base["single"].values())
    assert base["oracle"]["aiq"] >= base["zero_router"]["aiq"] >= base["random"]["aiq"] - 1e-9
    curve = report["router"]["curve"]
    assert curve[0]["floor"] == 0.0 and curve[0]["shares"]["small"] == 1.0
    two = report["two_model"]
    assert two["weak"] == "small" and two["strong"] == "big"
    assert 0.0 <= two["apgr"] <= 1.0
    # Cost comes from usage x policy prices.
    assert base["single"]["small"]["cost"] == pytest.approx((30 * 0.1 + 100 * 0.2) / 1e6)


def test_eval_with_calibration_text_output(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    calibrated = files["dir"] / "calibrated.yaml"
    main(
        [
            "calibrate",
            "--policy",
            str(files["policy"]),
            "--data",
            str(files["data"]),
            "--out",
            str(calibrated),
            "--no-progress",
        ]
    )
    capsys.readouterr()
    code = main(
        [
            "eval",
            "--policy",
            str(files["policy"]),
            "--data",
            str(files["data"]),
            "--calibration",
            str(calibrated),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "AIQ" in text and "zero_router" in text and "APGR" in text


def test_bad_input_exits_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bad = files["dir"] / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "hi", "scores": {"small": 7}}\n')
    args = ["--policy", str(files["policy"]), "--data", str(bad), "--no-progress"]
    assert main(["eval", *args]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    other = files["dir"] / "other.jsonl"
    other.write_text('{"id": "x", "prompt": "hi", "scores": {"nobody": 1}}\n')
    args = ["--policy", str(files["policy"]), "--data", str(other), "--no-progress"]
    assert main(["eval", *args]) == 2
    assert main(["calibrate", *args, "--out", str(files["dir"] / "x.yaml")]) == 2
    assert main(["train", "--data", str(bad), "--out", str(files["dir"] / "w")]) == 2


def test_bad_destinations_and_calibrations_exit_2_before_the_work(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--policy", str(files["policy"]), "--data", str(files["data"]), "--no-progress"]
    missing = files["dir"] / "nodir" / "x"
    assert main(["calibrate", *base, "--out", str(missing)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["calibrate", *base, "--out", str(files["dir"]), "--weights", "/none"]) == 2
    assert "--weights /none" in capsys.readouterr().err
    assert main(["eval", *base, "--plot", str(missing)]) == 2
    assert "--plot" in capsys.readouterr().err
    a_file = files["dir"] / "file"
    a_file.write_text("")
    assert main(["train", "--data", str(files["data"]), "--out", str(a_file)]) == 2
    assert "--out" in capsys.readouterr().err
    for text, says in (
        ("small: {abilty: 1.0}", "unknown calibration key 'abilty'"),
        ("small: {ability: high}", "must be a number"),
        ("small: [unclosed", "not valid YAML"),
    ):
        calibration = files["dir"] / "cal.yaml"
        calibration.write_text(text)
        assert main(["eval", *base, "--calibration", str(calibration)]) == 2
        assert says in capsys.readouterr().err


def test_eval_names_backends_and_prompts_it_leaves_out(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    policy = yaml.safe_load(files["policy"].read_text())
    extra = {**policy["backends"][0], "name": "unscored", "model": "another-model"}
    policy["backends"].append(extra)
    wider = files["dir"] / "wider.yaml"
    wider.write_text(yaml.safe_dump(policy))
    data = files["data"].read_text() + json.dumps(
        {"id": "half", "prompt": "only one backend", "scores": {"small": 1.0}}
    )
    partial = files["dir"] / "partial.jsonl"
    partial.write_text(data + "\n")
    args = ["eval", "--policy", str(wider), "--data", str(partial), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "not evaluated" in text and "unscored" in text
    assert "skipped 1 prompts" in text
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unscored_backends"] == ["unscored"] and report["skipped_prompts"] == 1


def test_calibrate_uses_the_policys_predictor(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The abilities are fitted on the weights the router will use (its predictor_weights),
    and a heuristic policy, which has no abilities to fit, is refused."""
    weights = files["dir"] / "brain"
    assert main(["train", "--data", str(files["data"]), "--out", str(weights)]) == 0
    capsys.readouterr()
    policy = yaml.safe_load(files["policy"].read_text())
    policy["routing"]["predictor_weights"] = str(weights)
    own = files["dir"] / "own.yaml"
    own.write_text(yaml.safe_dump(policy))
    fitted = []
    for policy_file, extra in ((own, []), (files["policy"], ["--weights", str(weights)])):
        out = files["dir"] / "out.yaml"
        args = ["--policy", str(policy_file), "--data", str(files["data"]), "--out", str(out)]
        assert main(["calibrate", *args, *extra, "--json", "--no-progress"]) == 0
        fitted.append(json.loads(capsys.readouterr().out)["calibrated"])
    assert fitted[0] == fitted[1]
    policy["routing"] = {"predictor": "heuristic", "quality_floor": 0.7}
    own.write_text(yaml.safe_dump(policy))
    args = ["--policy", str(own), "--data", str(files["data"]), "--out", str(out)]
    assert main(["calibrate", *args, "--no-progress"]) == 2
    assert "predictor: heuristic" in capsys.readouterr().err


def test_train_then_use_the_weights(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "weights"
    assert (
        main(
            [
                "train",
                "--data",
                str(files["data"]),
                "--out",
                str(out),
                "--max-iter",
                "15",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (out / "default.npz").exists() and (out / "default.json").exists()
    capsys.readouterr()
    code = main(
        [
            "eval",
            "--policy",
            str(files["policy"]),
            "--data",
            str(files["data"]),
            "--weights",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["prompts"] == 120


def test_plot_needs_matplotlib(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    png = files["dir"] / "curve.png"
    code = main(
        [
            "eval",
            "--policy",
            str(files["policy"]),
            "--data",
            str(files["data"]),
            "--plot",
            str(png),
            "--no-progress",
        ]
    )
    if importlib.util.find_spec("matplotlib") is None:
        assert code == 2 and "matplotlib" in capsys.readouterr().err
    else:
        assert code == 0 and png.stat().st_size > 1000


def test_calibrate_reports_by_a_value_policys_rule(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """On a rule: value policy the summary is the value rule's shares, the router's own."""
    from llmrouter.router import Router

    policy = files["dir"] / "value.yaml"
    out = files["dir"] / "calibrated.yaml"
    args = ["--policy", str(policy), "--data", str(files["data"]), "--out", str(out)]
    # An answer value at which both backends get calls (where it lies depends on the
    # shipped weights): the first on a grid of $0.0005 steps.
    for step in range(2, 60):
        value = step / 2000
        policy.write_text(
            POLICY.replace(
                "  quality_floor: 0.7\n", f"  rule: value\n  answer_value_usd: {value}\n"
            )
        )
        assert main(["calibrate", *args, "--json", "--no-progress"]) == 0
        at = json.loads(capsys.readouterr().out)["at_floor"]
        if 0 < at["backends"]["big"]["share_at_floor"] < 1:
            break
    else:
        pytest.fail("no answer_value_usd up to $0.03 sends calls to both backends")
    assert at["rule"] == "value" and at["answer_value_usd"] == value and at["quality_floor"] == 0
    calibrated = load_policy(out)
    calibrated.cache.enabled = calibrated.ledger.enabled = False
    router = Router(calibrated)
    prompts = [json.loads(line)["prompt"] for line in files["data"].read_text().splitlines()]
    chosen = [router.route([{"role": "user", "content": p}]).backend for p in prompts]
    for name in ("small", "big"):
        share = at["backends"][name]["share_at_floor"]
        assert share == pytest.approx(chosen.count(name) / len(chosen), abs=1e-4)
    assert main(["calibrate", *args, "--no-progress"]) == 0
    assert (
        f"by rule: value at answer_value_usd {value:g}, on all 120 prompts:"
        in capsys.readouterr().out
    )


def test_eval_and_calibrate_read_data_keyed_by_model_id(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Results recorded per model id (as the shared sets' converters write them) read exactly
    as results keyed by the policy's backend names, in both commands."""
    ids = {"small": "small-model", "big": "big-model"}
    by_model = []
    for line in files["data"].read_text().splitlines():
        record = json.loads(line)
        for field in ("scores", "usage"):
            record[field] = {ids[k]: v for k, v in record[field].items()}
        by_model.append(json.dumps(record))
    data = files["dir"] / "by_model.jsonl"
    data.write_text("\n".join(by_model) + "\n")
    reports = []
    for source in (files["data"], data):
        args = ["--policy", str(files["policy"]), "--data", str(source)]
        assert main(["eval", *args, "--json", "--no-progress"]) == 0
        report = json.loads(capsys.readouterr().out)
        out = files["dir"] / "calibrated.yaml"
        assert main(["calibrate", *args, "--out", str(out), "--json", "--no-progress"]) == 0
        report["calibrated"] = json.loads(capsys.readouterr().out)["calibrated"]
        reports.append(report)
    by_name, by_id = reports
    assert by_name.pop("scored_by_model_id") == {}
    assert by_id.pop("scored_by_model_id") == ids
    assert by_id == by_name
    assert (
        main(["eval", "--policy", str(files["policy"]), "--data", str(data), "--no-progress"]) == 0
    )
    assert (
        "scores read by model id: small <- small-model, big <- big-model" in capsys.readouterr().out
    )


def test_train_anchors_ratings_on_the_data_models(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the default anchor models in the data, train warns that ratings fall back to a
    default line; --anchor names two of the trained models instead, and is checked first."""
    base = ["train", "--data", str(files["data"]), "--max-iter", "15", "--no-progress"]
    out = files["dir"] / "w"
    assert main([*base, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "rating anchors unused" in err and "gpt-4-1106-preview" in err
    assert json.loads((out / "default.json").read_text())["rating_map"]["anchors"] == []

    anchored = files["dir"] / "anchored"
    anchors = ["--anchor", "Small=0.4", "--anchor", "openai/big=0.8"]
    assert main([*base, "--out", str(anchored), *anchors]) == 0
    assert "warning" not in capsys.readouterr().err
    meta = json.loads((anchored / "default.json").read_text())
    assert meta["rating_map"]["anchors"] == [["big", 0.8], ["small", 0.4]]
    # A backend rated like an anchor sits at that anchor model's plain-backend ability.
    from llmrouter.brain.abilities import rating_ability

    hi, lo = meta["rating_map"]["anchor_abilities"]
    assert rating_ability(0.8, meta) == pytest.approx(hi, abs=1e-3)
    assert rating_ability(0.4, meta) == pytest.approx(lo, abs=1e-3)

    for bad, says in (
        (["--anchor", "big=0.8"], "exactly twice"),
        (["--anchor", "big=1.5", "--anchor", "small=0.4"], "0 < RATING < 1"),
        (["--anchor", "big", "--anchor", "small=0.4"], "MODEL=RATING"),
        (["--anchor", "big=0.5", "--anchor", "small=0.5"], "must differ"),
        (["--anchor", "nosuch=0.9", "--anchor", "small=0.4"], "nosuch: no scores"),
        (["--anchor", "Big=0.9", "--anchor", "openai/big=0.4"], "names big twice"),
    ):
        assert main([*base, "--out", str(files["dir"] / "bad"), *bad]) == 2
        assert says in capsys.readouterr().err
        assert not (files["dir"] / "bad").exists()  # refused before creating --out


def test_mixed_keys_are_counted_and_said(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """One key per backend: records scoring it under the other key are not read, and both
    commands say how many."""
    lines = files["data"].read_text().splitlines()
    mixed = []
    for i, line in enumerate(lines):
        record = json.loads(line)
        if i % 4 == 0:  # a quarter of the records keep big's results under its model id
            record["scores"]["big-model"] = record["scores"].pop("big")
        mixed.append(json.dumps(record))
    data = files["dir"] / "mixed.jsonl"
    data.write_text("\n".join(mixed) + "\n")
    args = ["--policy", str(files["policy"]), "--data", str(data), "--no-progress"]
    assert main(["eval", *args, "--json"]) == 0
    out = capsys.readouterr()
    assert "30 records score a backend only under its other key" in out.err
    assert json.loads(out.out)["skipped_prompts"] == 30
    calibrated = str(files["dir"] / "c.yaml")
    assert main(["calibrate", *args, "--out", calibrated, "--json"]) == 0
    out = capsys.readouterr()
    assert "30 records score a backend only under its other key" in out.err
    assert json.loads(out.out)["calibrated"]["big"]["samples"] == 90
