"""Layer 5: trained models put to use: predictions on image files and Kaggle CSV, ONNX and int8 export.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
