"""Jobs: the state machine, the queue in SQL, JobService, and the worker."""
