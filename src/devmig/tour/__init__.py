"""The story `devmig lab` tells, above the composition root: it uses a lab's hosts as a user's commands would."""
