"""Layer 9: maintainers' tools: every docs table generated from the committed records, the fonts asset builder.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
