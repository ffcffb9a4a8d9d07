"""Layer 0 shared utilities, one of each: the atomic writer and JSON encoder (:mod:`.files`), the
provenance recorded with data, runs and results (:mod:`.versions`), the progress bar
(:mod:`.progress`), the reference scores and the normalized score (:mod:`.scores`), and the
argument checks (:mod:`.checks`)."""
