//! Re-implementations of the Go standard-library parsers and formatters that CoreDNS and
//! node-cache behaviour depends on, shared by every area: durations, `strconv`, host:port
//! splitting, and miekg/dns type, class and rcode names.

pub mod duration;
pub mod names;
pub mod net;
pub mod strconv;
