//! PDU outlet power driver for fencegate over SNMP v1/v2c/v3.
