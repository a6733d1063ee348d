"""The CI's scheduled jobs that propose changes as pull or merge requests."""
