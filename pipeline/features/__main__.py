"""python -m pipeline.features: the features stage (pipeline/features/stage.py)."""

from pipeline.features.stage import main

raise SystemExit(main())
