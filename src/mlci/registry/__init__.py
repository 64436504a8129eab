"""The MLflow model registry: aliases, the lock, the gate, the audit trail, lineage, store."""
