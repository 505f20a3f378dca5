"""`ddc topology check`: refuse deployments that break the 1:1 link-pair rule (docs/deployment.md)."""
