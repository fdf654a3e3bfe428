"""Clients of the cluster: the catalog (metadata service) client."""

__all__: list[str] = []
