"""Layer 4: the one inference loop and what it measures: scores, mistakes, inside a model, other writers' digits.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
