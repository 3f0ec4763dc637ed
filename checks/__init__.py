"""Checks run before the pipeline (`make run`): they read and validate, never write."""
