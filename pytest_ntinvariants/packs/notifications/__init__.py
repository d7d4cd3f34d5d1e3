"""The NotificationRequest pack (being moved here from the core; see its modules)."""
