"""Layer 0 shared utilities, one of each: the atomic writer and JSON encoder (:mod:`.files`), the
library versions recorded with data and runs (:mod:`.versions`)."""
