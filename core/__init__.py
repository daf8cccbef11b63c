"""Layer 0: what every other layer may use: one registry helper, atomic files and their places,
a record's provenance, markdown tables.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
