"""The replay engine. Pure: no I/O, clock or randomness; time comes from OrchestratorStarted."""
