"""The task queue option's tests: real worker processes, a real Redis broker."""
