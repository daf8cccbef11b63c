"""torch.hub entry points, one per key and alias of the model registry (built from it, never listed twice).

    model = torch.hub.load("<path to this checkout>", "v3", source="local", pretrained=True)

``pretrained=True`` gives the committed reference model in eval mode, ready to predict; ``False`` a
freshly initialised one, whose knobs may be given (``torch.hub.load(..., "v3", pretrained=False, width=2.0)``).
Keys with a hyphen are also reachable with an underscore (``cnn_bn``).
"""
from __future__ import annotations

import typing as _typing

from torch import nn

import model_strategy

dependencies = ["torch", "safetensors"]


def _entry(key: str) -> _typing.Callable[..., nn.Module]:
    strategy = model_strategy.get_strategy(key)

    def load(pretrained: bool = True, device: str = "cpu", **knobs: object) -> nn.Module:
        if pretrained:
            if strategy.changed_knobs(knobs):
                raise ValueError(f"the reference weights of model {key} are its published architecture; knobs"
                                 f" ({', '.join(knobs)}) build a new one: pretrained=False")
            return model_strategy.load_trained(key, device=device)
        return strategy.get_model(device, knobs)

    load.__name__ = load.__qualname__ = key.replace("-", "_")
    load.__doc__ = (f"Model {key} of the MNIST zoo: {strategy.description}; {strategy.num_params():,} parameters.\n\n"
                    f"pretrained=True: the committed reference weights ({model_strategy.trained_params(key).name}),"
                    f" in eval mode; False: freshly initialised. device: where to put it. Knobs (pretrained=False):"
                    f" {', '.join(f'{k}={v!r}' for k, v in strategy.knobs.items())}.")
    return load


for _key in model_strategy.available_models():
    for _name in {_key, _key.replace("-", "_"), *model_strategy.get_strategy(_key).aliases}:
        globals()[_name] = _entry(_key)
