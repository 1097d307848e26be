"""Slack-free, database-free core: taxonomy, examples, learners, evaluation.

Nothing in here imports ``bot``, ``admin``, ``data`` or any Slack package; the only I/O is
files and the LLM HTTP API.
"""
