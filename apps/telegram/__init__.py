"""The Telegram bot, an interface like the panel."""
