"""Operations services, one module per sub-domain: backups, restore (PostgreSQL),
redis_restore, maintenance (jobs and their runs), runbooks (mode changes, graceful
shutdown), checklists; common holds what they share.

Every function is keyword-only and takes ``actor`` ("beat", "cli:<os user>",
"user:<name>"); state changes leave an audit row. Commands, tasks and views are thin
interfaces over these.
"""
