"""Synthetic PSG, recordings replayed as devices, device emulators, fault injection."""
