"""Synthetic polysomnography with exact ground truth.

``simulate_night(profile, hours, seed)`` builds a whole night (hypnogram fitted to real scored
nights, EEG, EOG, EMG, ECG, PPG, HR, airflow, effort, SpO2, accelerometer) and ``write_night``
stores it as EDF+ with annotations plus a JSON sidecar.
"""

from sleepstream.simulators.synthetic.night import Night, simulate_night, write_night
from sleepstream.simulators.synthetic.profiles import PROFILES, Profile, get_profile

__all__ = ["PROFILES", "Night", "Profile", "get_profile", "simulate_night", "write_night"]
