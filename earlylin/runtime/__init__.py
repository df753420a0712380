"""What makes a run reproducible and lets it survive: seeded streams, fingerprints of code and inputs,
records, the cache and checkpoints' atomic files, and progress output. It imports no model."""
