//! The SDK for fencegate plugin authors: the C ABI types and an export macro.
