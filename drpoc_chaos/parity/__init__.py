"""Data parity of whole schemas between source and replica: Chaos Toolkit probe and action, and `drpoc parity`
(adapters over services.parity; docs/PARITY.md)."""
