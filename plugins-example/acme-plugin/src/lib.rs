//! An example fencegate plugin (a made-up vendor's HTTP power API), built as a cdylib.
