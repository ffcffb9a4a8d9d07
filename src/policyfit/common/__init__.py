"""Layer 0 shared utilities, one of each: the atomic writer and JSON encoder (:mod:`.files`)."""
