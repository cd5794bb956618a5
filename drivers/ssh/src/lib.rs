//! In-band SSH poweroff driver for fencegate (can never prove power-off).
