"""The jobs behind the admin commands (retrain, evaluation report, rollback), the settings
tree and the ``triage`` command line. No Slack imports: progress goes through callbacks."""
