"""The method's stage kinds, in the order a trial runs them (pipeline.STAGES implements them)."""

STAGE_KINDS = ("teacher", "embed", "curate", "student", "eval")
