"""The contract every registered method keeps, checked over ``available_methods()`` (PEFT-style battery).

One tiny logged run is shared (deltas, per-sample gradients, learning events; momentum-free Adam so
every log-based method applies); each method runs with few steps. A method added to the package
is picked up here without touching this file.
"""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import train_run

from hf_unlearn.data import ForgetRequestError
from hf_unlearn.methods import (
    MethodConfig,
    MethodOptionError,
    UnknownMethodError,
    available_methods,
    describe_options,
    get_method,
    method_config,
    register_method,
    registry,
    unlearn,
)

METHODS = sorted(available_methods())
FORGET = ["canary-0000", "canary-0001", "synthetic-train-00003"]
_results: dict = {}


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    tokenizer, tokenized, _ = tiny
    out = tmp_path_factory.mktemp("contract_run")
    model, _ = train_run(
        tiny,
        out,
        num_train_epochs=2,
        adam_beta1=0.0,
        record_deltas=True,
        record_per_sample=True,
        per_sample_fraction=0.05,
        record_learning_events=True,
    )
    model.eval()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}  # saved BEFORE any method runs
    train = tokenized["train"]
    forget = train.filter(lambda r: r["id"] in FORGET)
    retain = train.filter(lambda r: r["id"] not in FORGET)
    return SimpleNamespace(
        model=model, before=before, log=out, tokenizer=tokenizer, forget=forget, retain=retain, test=tokenized["test"]
    )


def fast(method: str) -> dict:
    """Options that keep a method to a couple of optimizer steps."""
    names = {row[0] for row in describe_options(method)}
    return {"max_steps": 2} if "max_steps" in names else {}


def call(run, method, forget=None, **options):
    forget = run.forget if forget is None else forget
    return unlearn(
        run.model,
        forget,
        run.retain,
        method=method,
        log=run.log,
        tokenizer=run.tokenizer,
        **{**fast(method), **options},
    )


def result_of(run, method):
    if method not in _results:
        _results[method] = call(run, method)
    return _results[method]


def assert_unchanged(run):
    state = run.model.state_dict()
    assert set(state) == set(run.before)
    for name, value in state.items():
        assert torch.equal(value, run.before[name]), f"the input model's {name} changed"


# ---- per method ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_refuses_an_empty_forget_set(run, method):
    with pytest.raises(ForgetRequestError, match="empty"):
        call(run, method, forget=run.forget.select([]))
    assert_unchanged(run)


@pytest.mark.parametrize("method", METHODS)
def test_refuses_an_unknown_forget_id(run, method):
    stranger = run.test.select([0])  # an id the run never trained on
    with pytest.raises(ForgetRequestError, match="not in the training data"):
        call(run, method, forget=stranger)
    assert_unchanged(run)


@pytest.mark.parametrize("method", METHODS)
def test_rejects_an_unknown_option(run, method):
    with pytest.raises(MethodOptionError, match=f"method '{method}' has no option 'no_such_option'"):
        call(run, method, no_such_option=1)
    assert_unchanged(run)


@pytest.mark.parametrize("method", METHODS)
def test_leaves_the_input_model_unmodified_and_changes_the_copy(run, method):
    result = result_of(run, method)
    assert result.model is not run.model
    assert_unchanged(run)
    changed = [n for n, p in result.model.state_dict().items() if not torch.equal(p, run.before[n])]
    assert changed, f"{method} returned the input weights unchanged"


@pytest.mark.parametrize("method", METHODS)
def test_weights_are_finite(run, method):
    assert all(torch.isfinite(p).all() for p in result_of(run, method).model.parameters())


@pytest.mark.parametrize("method", METHODS)
def test_records_stats(run, method):
    stats = result_of(run, method).stats
    spec = get_method(method)
    assert stats["method"] == method and stats["guarantee"] == spec.guarantee
    assert stats["forget_count"] == len(FORGET)
    assert isinstance(stats["optimizer_steps"], int) and stats["optimizer_steps"] >= 0
    assert (
        isinstance(stats["wall_time_s"], float) and math.isfinite(stats["wall_time_s"]) and stats["wall_time_s"] >= 0
    )
    assert stats["log_bytes_read"] >= 0
    if "max_steps" in fast(method):  # max_steps caps each run (RUM: each group's run)
        assert stats["optimizer_steps"] <= 2 * getattr(method_config(method, {}), "num_groups", 1)


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_under_a_seed(run, method):
    first = result_of(run, method).model.state_dict()
    second = call(run, method).model.state_dict()
    for name, value in first.items():
        assert torch.equal(value, second[name]), f"{method}: two runs with the same seed differ in {name}"


@pytest.mark.parametrize("method", METHODS)
def test_registration_is_complete(method):
    spec = get_method(method)
    assert dataclasses.is_dataclass(spec.config_class) and spec.guarantee in ("exact", "approximate")
    assert '"' in spec.description and len(spec.description) > 40  # cites the paper's title in quotes
    assert spec.summary
    config = method_config(method, {})  # the defaults are a valid config
    assert isinstance(config, spec.config_class)
    rows = describe_options(method)
    assert [r[0] for r in rows] == [f.name for f in dataclasses.fields(spec.config_class) if f.init]
    assert all(help_text for *_, help_text in rows), f"{method}: an option lacks help"


# ---- the registry -----------------------------------------------------------------------------------------
def test_unknown_method_is_a_domain_error(run):
    with pytest.raises(UnknownMethodError) as info:
        call(run, "no_such_method")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert message.startswith("unknown unlearning method 'no_such_method'; available: ") and "amnesiac" in message
    assert_unchanged(run)


@pytest.mark.parametrize("value, expected", [("1e-4", 1e-4), ("3e-4", 3e-4), ("0.001", 1e-3), (2, 2.0)])
def test_string_options_convert_by_field_type(value, expected):
    config = method_config("neggrad", {"learning_rate": value, "max_steps": "3", "epochs": "2"})
    assert config.learning_rate == expected and isinstance(config.learning_rate, float)
    assert config.max_steps == 3 and config.epochs == 2.0


def test_string_options_of_every_kind():
    assert method_config("per_sample_replay", {"dropout": "true"}).dropout is True
    assert method_config("per_sample_replay", {"dropout": "false"}).dropout is False
    assert method_config("salun", {"forget_share": "none"}).forget_share is None
    assert method_config("salun", {"forget_share": "0.1"}).forget_share == 0.1
    rum = method_config(
        "rum",
        {
            "methods": "none,finetune,salun",
            "group_args": "[{}, {learning_rate: 1e-3}, {}]",
            "holdout_args": "{learning_rate: 3e-4}",
            "seed": "none",
        },
    )
    assert rum.methods == ["none", "finetune", "salun"] and rum.seed is None
    assert rum.group_args == [{}, {"learning_rate": 1e-3}, {}] and rum.holdout_args == {"learning_rate": 3e-4}
    assert method_config("rum", {"group_args": "{high: {alpha: 0.5}}"}).group_args == {"high": {"alpha": 0.5}}


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("learning_rate", "fast", "float | None"),
        ("max_steps", "1.5", "int"),
        ("batch_size", True, "int"),
        ("learning_rate", [1e-4], "float | None"),
    ],
)
def test_a_bad_value_names_method_option_value_and_type(option, value, expected):
    with pytest.raises(MethodOptionError) as info:
        method_config("neggrad", {option: value})
    assert str(info.value) == f"method 'neggrad': option '{option}' got {value!r}, expected {expected}"


def test_a_value_the_config_refuses_is_an_option_error():
    with pytest.raises(MethodOptionError, match="method 'neggrad_plus'.*alpha"):
        method_config("neggrad_plus", {"alpha": "1.5"})


def test_a_duplicate_registration_fails_loudly():
    with pytest.raises(ValueError, match="'neggrad' registered twice"):
        register_method("neggrad", MethodConfig, guarantee="approximate", description="x")(lambda *a: {})
    with pytest.raises(ValueError, match="guarantee"):
        register_method("contract_test_method", MethodConfig, guarantee="perfect", description="x")
    assert "contract_test_method" not in available_methods()


def test_a_broken_method_module_is_not_skipped(monkeypatch):
    real = registry.pkgutil.iter_modules

    def with_a_missing_module(path):
        return [*real(path), SimpleNamespace(name="zz_missing_method_module")]

    monkeypatch.setattr(registry.pkgutil, "iter_modules", with_a_missing_module)
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(ModuleNotFoundError, match="zz_missing_method_module"):
        available_methods()
