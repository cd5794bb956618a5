//! Out-of-process drivers (work in progress in this issue).
