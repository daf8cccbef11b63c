"""Layer 8: the web app (``main.py --serve``): a draw page and a dashboard over the library's calls (docs/serve.md).

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
