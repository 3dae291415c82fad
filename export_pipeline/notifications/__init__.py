"""Export notifications (``notification.messages``): the message model and its
templates, and delivery to email, Slack, Discord and Telegram. No Dagster in here."""
