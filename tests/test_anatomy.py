"""Figures of merit: MACs and receptive fields checked on a net worked out by hand."""
from __future__ import annotations

from torch import nn

import model_strategy
from models import anatomy


def test_macs_and_receptive_fields_of_a_net_worked_out_by_hand() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, padding=1, dilation=1), nn.Flatten(), nn.Linear(4 * 12 * 12, 10))
    a = anatomy.analyse(net)
    by_name = {layer.name: layer for layer in a.layers}
    # 3x3 -> 3; another 3x3 -> 5; 2x2 pool -> 6, jump 2; 3x3 at jump 2 -> 10; flatten: the whole image
    assert [by_name[k].receptive_field for k in ("0", "2", "3", "4", "6")] == [3, 5, 6, 10, 28]
    assert by_name["0"].macs == 26 * 26 * 4 * 1 * 9 and by_name["2"].macs == 24 * 24 * 4 * 4 * 9
    assert by_name["4"].macs == 12 * 12 * 4 * 4 * 9 and by_name["6"].macs == 576 * 10
    assert a.macs == sum(layer.macs for layer in a.layers) and a.params == sum(p.numel() for p in net.parameters())
    assert by_name["4"].output == (4, 12, 12) and by_name["6"].output == (10,)


def test_fully_connected_nets_have_no_receptive_field_and_macs_equal_their_weights() -> None:
    a = anatomy.analyse(model_strategy.get_strategy("fc").get_model())
    assert not a.is_convolutional and all(layer.receptive_field is None for layer in a.layers)
    assert a.macs == 784 * 256 + 256 * 128 + 128 * 10
    assert a.weights_kb == round(235_146 * 4 / 1024, 1)


def test_tiny_nets_see_the_whole_digit_by_their_last_layer() -> None:
    for key in ("1", "2", "3"):
        layers = anatomy.analyse(model_strategy.get_strategy(key).get_model()).layers
        assert layers[-1].receptive_field >= 28 and layers[-1].output[0] == 10
