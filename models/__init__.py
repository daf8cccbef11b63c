"""Architectures of the zoo, one module each.

Every model maps a batch of shape (N, 1, 28, 28), normalized with MNIST's mean and std,
to **logits** of shape (N, 10). Losses apply ``cross_entropy`` to them; probabilities are
``softmax(logits)``. Which module backs which key is decided in ``model_strategy.py`` alone.
"""
