"""Durable entities: the operation executor and the lock protocol. Pure, like orchestration/."""
