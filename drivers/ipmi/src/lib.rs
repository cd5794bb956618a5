//! IPMI 2.0 lanplus driver (work in progress in this issue).
