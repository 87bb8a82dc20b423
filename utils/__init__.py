"""Data, visualisation and training helpers for the DCGAN scripts."""
