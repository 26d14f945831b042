"""Loopback fakes of the services the bot cannot reach in tests (brokers, messaging).

Each fake is a small server on 127.0.0.1 (free port) that speaks the real wire
protocol, so the real client library (ccxt, ib_async, ...) is what the tests drive.
"""
