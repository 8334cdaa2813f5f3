"""The staged rollout a release engineer runs, and the packaging of the handlers it ships."""
