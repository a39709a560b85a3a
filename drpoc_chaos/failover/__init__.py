"""The site failover drill: Chaos Toolkit actions (adapters over services.failover; docs/FAILOVER.md)."""
