"""fedcl: federated contrastive anomaly detection on IoT network traffic."""

__version__ = "0.1.0"
