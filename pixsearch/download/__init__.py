"""The download stage: URL lists in the bucket -> validated, content-addressed images + URL maps."""
