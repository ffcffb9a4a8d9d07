"""The public API a user meets: plain functions with real signatures, exported types."""

from __future__ import annotations

import inspect

import policyfit


def test_entry_points_are_plain_functions_with_real_signatures():
    for name in ("train", "evaluate", "diagnose", "load_dataset", "make_dataset", "load_policy"):
        fn = getattr(policyfit, name)
        assert inspect.isfunction(fn), name
        params = inspect.signature(fn).parameters
        assert (
            "dataset" in params
            or "policy" in params
            or "path" in params
            or name
            in (
                "load_dataset",
                "make_dataset",
            )
        ), name
    # importing the packages behind them does not rebind the public names
    import importlib

    for module in ("diagnostics.card", "evaluation.rollout", "training.trainer"):
        importlib.import_module(f"policyfit.{module}")

    assert inspect.isfunction(policyfit.train) and inspect.isfunction(policyfit.evaluate)
    assert inspect.isfunction(policyfit.diagnose)


def test_diagnose_keeps_the_signature_and_defaults_of_the_function_it_fills_in():
    from policyfit.diagnostics.card import diagnose

    public = inspect.signature(policyfit.diagnose).parameters
    inner = inspect.signature(diagnose).parameters
    assert list(public) == list(inner)
    for name, param in inner.items():
        assert public[name].default == param.default, name


def test_result_and_config_types_are_exported():
    for name in (
        "TrainResult",
        "DataCard",
        "FQEResult",
        "FQEConfig",
        "CertificateReport",
        "Policy",
        "RunDir",
        "Dataset",
        "PolicyfitError",
    ):
        assert isinstance(getattr(policyfit, name), type), name
        assert name in policyfit.__all__


def test_parameter_names_are_consistent():
    """A dataset argument is called ``dataset`` and a policy argument ``policy`` everywhere."""
    takes_dataset = ("train", "diagnose", "fitted_q_evaluation", "corrupt_dataset", "save_dataset")
    for name in takes_dataset:
        assert "dataset" in inspect.signature(getattr(policyfit, name)).parameters, name
    for name in ("evaluate", "fitted_q_evaluation", "certify_policy"):
        assert "policy" in inspect.signature(getattr(policyfit, name)).parameters, name
