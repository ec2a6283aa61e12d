//! Live reload: file watching, checksum polling, and the runtime swap.
