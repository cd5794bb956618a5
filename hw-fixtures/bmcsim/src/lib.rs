//! BMC simulator (work in progress in this issue).
