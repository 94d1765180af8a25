"""Planning and scheduling: a run's graph of steps, and the loop that runs it on a backend."""
