"""Slack glue only: the Bolt app factory, listeners, Block Kit views, payload models, runners.

Nothing outside this package imports it; ``bot.cli`` is the program's entry point.
"""
