//! Redfish power driver for fencegate, with certificate pinning and vendor quirks.
