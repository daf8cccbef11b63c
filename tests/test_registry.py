"""One registry helper behind the six registries: names, aliases, a listing and one error naming the valid choices."""
from __future__ import annotations

import pytest

import acceleration
import augmentations
import data_utils
import lr_schedulers
import model_strategy
import optimizers
from core.registry import Registry, UnknownName

REGISTRIES = {"model": model_strategy.MODELS, "scheduler": lr_schedulers.SCHEDULERS, "optimizer": optimizers.OPTIMIZERS,
              "augmentation": augmentations.AUGMENTATIONS, "loader": data_utils.LOADERS, "backend": acceleration.BACKENDS}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_registry_is_the_one_helper_and_an_unknown_name_lists_the_valid_ones(kind) -> None:
    registry = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    with pytest.raises(UnknownName) as caught:
        registry["no-such-thing"]
    message = str(caught.value)
    assert message.startswith(f"unknown {kind} 'no-such-thing'; valid: ")
    assert all(name in message for name in registry)
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)


def test_aliases_resolve_to_their_entry_and_are_argparse_choices() -> None:
    models = model_strategy.MODELS
    assert models["v3"] is models["3"] and models.key("v1") == "1"
    assert "v2" in models.choices() and "v2" not in list(models)
    assert models.aliases("3") == ["v3"]


def test_a_name_taken_twice_is_refused() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1, aliases=("b",))
    with pytest.raises(ValueError, match="'b' is registered twice"):
        registry.register("b", 2)
    assert dict(registry) == {"a": 1} and len(registry) == 1


def test_the_cli_refuses_an_unknown_name_from_the_registry_with_its_listing(capsys) -> None:
    import main

    assert main.main(["--model", "v9", "--list-models"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'v9'; valid: 1 (v1), 2 (v2), 3 (v3), fc, fc-deep" in err and "Traceback" not in err
