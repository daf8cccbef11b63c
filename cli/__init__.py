"""Layer 9: the command line: flags in argument groups, and each mode as one library call (``zoo``) and its lines.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
