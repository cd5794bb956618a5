//! Loads fencegate power drivers from dynamic libraries through a versioned C ABI.
