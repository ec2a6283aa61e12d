//! Re-implementations of the Go standard-library parsers and formatters that CoreDNS and
//! node-cache behaviour depends on, shared by every area: durations and `strconv`.

pub mod duration;
pub mod strconv;
