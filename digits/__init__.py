"""Layer 2: any image into MNIST's form (one preparation, single and batched) and the handwriting fonts' digits.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
