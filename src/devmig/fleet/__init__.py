"""The fleet: host inventories in a store, placement, claims, and exports for schedulers."""
