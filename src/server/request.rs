//! A query as plugins see it, and what a plugin chain returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};

use super::wire;

/// Transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// Datagram.
    Udp,
    /// Stream (2-byte length framing).
    Tcp,
}

impl Proto {
    /// `udp` or `tcp`, as CoreDNS labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// The client's EDNS(0) OPT record, as read from the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEdns {
    /// Advertised UDP payload size (as sent, may be below 512).
    pub udp_size: u16,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// EDNS version.
    pub version: u8,
    /// The raw OPT RDATA (options), kept for echoing.
    pub options: Vec<u8>,
}

/// One query travelling down a plugin chain.
#[derive(Clone, Debug)]
pub struct Request {
    /// The query in wire form, ID as the client sent it. Plugins that change the query must
    /// keep this in sync (see [`Request::replace_message`]).
    pub wire: Vec<u8>,
    /// The length of the query as received (for metrics and logs).
    pub received_len: usize,
    /// The question name as sent (case preserved), presentation form with trailing dot.
    pub qname: String,
    /// The question name lower-cased, used for routing, keys and logs.
    pub qname_lower: String,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The client's OPT record, if any.
    pub edns: Option<ClientEdns>,
    /// Client address.
    pub client: SocketAddr,
    /// Local address the query arrived on.
    pub local: SocketAddr,
    /// Transport.
    pub proto: Proto,
    /// Listener label, e.g. `dns://:53`.
    pub server: Arc<str>,
    /// The zone of the block that serves this query (e.g. `cluster.local.`).
    pub zone: Arc<str>,
    /// When the server received the query.
    pub started: Instant,
    /// Metadata set by plugins (`forward/upstream`, `log/type`, ...).
    pub metadata: Vec<(&'static str, String)>,
}

impl Request {
    /// The message ID as sent.
    pub fn id(&self) -> u16 {
        wire::id(&self.wire).unwrap_or(0)
    }

    /// Header flag bits of the query.
    pub fn flags(&self) -> u16 {
        wire::flags(&self.wire)
    }

    /// The DO bit.
    pub fn dnssec_ok(&self) -> bool {
        self.edns.as_ref().is_some_and(|e| e.dnssec_ok)
    }

    /// The CD bit.
    pub fn checking_disabled(&self) -> bool {
        self.flags() & wire::bits::CD != 0
    }

    /// The size a reply to this client may have: TCP 65535; UDP max(OPT size, 512), or 512
    /// without OPT.
    pub fn client_size(&self) -> usize {
        match (self.proto, &self.edns) {
            (Proto::Tcp, _) => 65535,
            (Proto::Udp, Some(e)) => (e.udp_size as usize).max(512),
            (Proto::Udp, None) => 512,
        }
    }

    /// Parses the query into a full message.
    pub fn message(&self) -> Result<Message, String> {
        Message::from_vec(&self.wire).map_err(|e| e.to_string())
    }

    /// Replaces the query with `msg` (re-encoded); used by plugins that rewrite the query.
    pub fn replace_message(&mut self, msg: &Message) -> Result<(), String> {
        self.wire = msg.to_vec().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Adds a metadata entry (later entries with the same key win on lookup).
    pub fn set_metadata(&mut self, key: &'static str, value: String) {
        self.metadata.push((key, value));
    }

    /// Looks up a metadata entry.
    pub fn get_metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }
}

/// A reply produced by a plugin: a parsed message or ready wire bytes (ID may still need
/// patching by the server).
#[derive(Clone, Debug)]
pub enum Reply {
    /// A message built or parsed by the plugin.
    Message(Box<Message>),
    /// Encoded bytes, e.g. an upstream's reply or a cache hit.
    Wire(Vec<u8>),
}

impl Reply {
    /// The reply's header rcode (4-bit).
    pub fn rcode(&self) -> u16 {
        match self {
            Reply::Message(m) => u16::from(m.metadata.response_code) & 0x0f,
            Reply::Wire(w) => wire::rcode(w),
        }
    }

    /// Encodes (or copies) the reply to wire form.
    pub fn to_wire(&self) -> Result<Vec<u8>, String> {
        match self {
            Reply::Message(m) => m.to_vec().map_err(|e| e.to_string()),
            Reply::Wire(w) => Ok(w.clone()),
        }
    }

    /// Parses (or clones) the reply into a message.
    pub fn to_message(&self) -> Result<Message, String> {
        match self {
            Reply::Message(m) => Ok((**m).clone()),
            Reply::Wire(w) => Message::from_vec(w).map_err(|e| e.to_string()),
        }
    }
}

/// What a plugin chain returns: CoreDNS's `(rcode, error)` pair plus the reply, if one was
/// written.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The rcode the chain returned. When `reply` is None and this is SERVFAIL, REFUSED,
    /// FORMERR or NOTIMP, the server writes a reply with this rcode itself.
    pub rcode: ResponseCode,
    /// The written reply, if any.
    pub reply: Option<Reply>,
    /// An error to log (plugin/errors) — already prefixed `plugin/<name>: ` by the plugin.
    pub error: Option<String>,
    /// The plugin that wrote the reply (metrics label `plugin`), empty if none.
    pub plugin: &'static str,
}

impl Outcome {
    /// A written reply.
    pub fn written(plugin: &'static str, reply: Reply) -> Outcome {
        let rcode = ResponseCode::from(0, reply.rcode() as u8);
        Outcome { rcode, reply: Some(reply), error: None, plugin }
    }

    /// Nothing written; the server answers `rcode` if it is an error rcode.
    pub fn unwritten(rcode: ResponseCode, error: Option<String>) -> Outcome {
        Outcome { rcode, reply: None, error, plugin: "" }
    }
}
