"""What consumers read: the neighbours table, the gate before it, and the registered model."""
