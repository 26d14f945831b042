"""Risk and control writes, one module per sub-domain: modes (the mode row and the mode
machine), kill (the KILL latch and its report), incidents, limits, monitoring (the equity
rules); common holds what they share.

Every change is audited (AuditEvent) in the transaction that makes it, and every
refusal is audited too, outside the rolled-back work, before the refusal is raised:
a refused attempt changes nothing but leaves its trace. Panel events go out on commit.
Lock order (as in apps.trading.services): SystemState -> Order -> Position -> Account.
"""
