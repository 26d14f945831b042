"""Live market-data feeds: closed bars from a venue, pushed to the engine (``base.LiveFeed``)."""
