"""Layer 6: the one training loop, the one writer of a run's files, seeds at once or side by side, the leaderboard.

The layers: docs/architecture.md; ``tests/test_layout.py`` holds them."""
