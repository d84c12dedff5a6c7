"""The vocabulary: history events, actions, statuses, instance IDs and the JSON codec."""
