"""The model a user writes against: parameter sets, records, stages and the cache."""
