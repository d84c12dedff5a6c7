"""Dispatch: fetch work from the store, run the replay engine and activities, commit."""
