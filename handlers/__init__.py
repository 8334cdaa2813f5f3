"""CareConnect's WebSocket Lambda handlers: `$connect`, `$disconnect`, `$default`, and cleanup.

Each entry module (`connect`, `disconnect`, `default`, `cleanup`) is a thin `handler(event,
context)` over plain functions that take their collaborators (store, sender) as arguments, so
tests drive them with a real PostgreSQL and a management API served by moto.
"""
