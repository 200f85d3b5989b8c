"""Point-in-time restore as one pipeline: source (which snapshot and changes) -> rebuild as at T ->
classify -> apply -> audit; plus the predicate language and the loss finder. Reads storage and
capture, never the runner or the stages."""
