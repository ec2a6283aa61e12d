//! Replies the server writes itself (CoreDNS's errorFunc) and the scrub applied to every reply:
//! EDNS normalisation and truncation to the client's buffer.

use hickory_proto::op::{Edns, Message};

use super::request::{Proto, Request};
use super::wire::{self, bits};

/// EDNS option codes a reply may echo from the query (NSID, EXPIRE, COOKIE, TCP-KEEPALIVE,
/// PADDING).
const ECHOED_OPTIONS: [u16; 5] = [3, 9, 10, 11, 12];

/// Keeps only the options CoreDNS echoes from raw OPT RDATA.
fn filter_options(rdata: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= rdata.len() {
        let code = u16::from_be_bytes([rdata[off], rdata[off + 1]]);
        let len = u16::from_be_bytes([rdata[off + 2], rdata[off + 3]]) as usize;
        let end = (off + 4 + len).min(rdata.len());
        if ECHOED_OPTIONS.contains(&code) {
            out.extend_from_slice(&rdata[off..end]);
        }
        off = end;
    }
    out
}

/// The client's OPT as CoreDNS echoes it: version 0, extended rcode cleared, DO kept, only the
/// echoable options.
fn client_opt(req: &Request, out: &mut Vec<u8>) {
    if let Some(e) = &req.edns {
        encode_client_opt(e.udp_size, e.dnssec_ok, &e.options, out);
    }
}

/// Appends the echo of a client's OPT (given by its parts) to `out`; the caller bumps ARCOUNT.
pub fn encode_client_opt(udp_size: u16, dnssec_ok: bool, options: &[u8], out: &mut Vec<u8>) {
    let ttl = if dnssec_ok { 0x8000 } else { 0 };
    if options.is_empty() {
        wire::encode_opt(udp_size, ttl, &[], out);
    } else {
        wire::encode_opt(udp_size, ttl, &filter_options(options), out);
    }
}

/// A reply written by the server with `rcode` (SERVFAIL, REFUSED, ...): the client's ID,
/// opcode, RD and CD, the question as sent, and the client's OPT echoed.
pub fn error_reply(req: &Request, rcode: u16) -> Vec<u8> {
    let qend = wire::question_end(&req.wire).unwrap_or(wire::HEADER_LEN).min(req.wire.len());
    let mut out = Vec::with_capacity(qend + 24);
    out.extend_from_slice(&req.wire[..wire::HEADER_LEN.min(req.wire.len())]);
    out.resize(wire::HEADER_LEN, 0);
    let reqf = req.flags();
    let opcode_bits = reqf & 0x7800;
    let mut flags = bits::QR | opcode_bits | (rcode & 0x0f);
    if opcode_bits == 0 {
        flags |= reqf & (bits::RD | bits::CD);
    }
    wire::set_flags(&mut out, flags);
    let qd = u16::from(qend > wire::HEADER_LEN);
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..12].fill(0);
    out.extend_from_slice(&req.wire[wire::HEADER_LEN..qend]);
    if req.edns.is_some() {
        client_opt(req, &mut out);
        wire::set_arcount(&mut out, 1);
    }
    out
}

/// Applies the scrub writer to a reply in wire form: the client's ID, OPT normalisation (or the
/// client's OPT appended), and truncation to the client's size with TC.
pub fn scrub_wire(req: &Request, mut reply: Vec<u8>) -> Vec<u8> {
    if reply.len() < wire::HEADER_LEN {
        return error_reply(req, 2);
    }
    wire::set_id(&mut reply, req.id());
    if let Some(e) = &req.edns {
        let Some(rrs) = wire::records(&reply) else {
            return scrub_slow(req, &reply);
        };
        match rrs.iter().rev().find(|r| r.rtype == wire::TYPE_OPT) {
            Some(opt) if opt.fixed == opt.start + 1 && reply[opt.start] == 0 => {
                let f = opt.fixed;
                reply[f + 2..f + 4].copy_from_slice(&e.udp_size.to_be_bytes());
                let old = u32::from_be_bytes([reply[f + 4], reply[f + 5], reply[f + 6], reply[f + 7]]);
                let ttl = (old & 0xff00) | if e.dnssec_ok { 0x8000 } else { 0 };
                reply[f + 4..f + 8].copy_from_slice(&ttl.to_be_bytes());
            }
            Some(_) => return scrub_slow(req, &reply),
            None => {
                let (_, _, _, ar) = wire::counts(&reply);
                client_opt(req, &mut reply);
                wire::set_arcount(&mut reply, ar.saturating_add(1));
            }
        }
    }
    if reply.len() <= req.client_size() {
        return reply;
    }
    match Message::from_vec(&reply) {
        Ok(m) => truncate(req, m),
        Err(_) => error_reply(req, 2),
    }
}

/// Scrubs a reply given as a message.
pub fn scrub_message(req: &Request, mut msg: Message) -> Vec<u8> {
    msg.metadata.id = req.id();
    normalize_edns(req, &mut msg);
    match msg.to_vec() {
        Ok(bytes) if bytes.len() <= req.client_size() => bytes,
        Ok(_) => truncate(req, msg),
        Err(_) => error_reply(req, 2),
    }
}

fn scrub_slow(req: &Request, reply: &[u8]) -> Vec<u8> {
    match Message::from_vec(reply) {
        Ok(m) => scrub_message(req, m),
        Err(_) => error_reply(req, 2),
    }
}

/// CoreDNS's SizeAndDo on a message.
fn normalize_edns(req: &Request, msg: &mut Message) {
    let Some(e) = &req.edns else { return };
    match msg.edns.as_mut() {
        Some(opt) => {
            opt.set_version(0);
            opt.set_max_payload(e.udp_size);
            opt.set_rcode_high(0);
            if e.dnssec_ok {
                opt.set_dnssec_ok(true);
            }
        }
        None => {
            let mut opt = Edns::new();
            opt.set_max_payload(e.udp_size);
            opt.set_version(0);
            opt.set_dnssec_ok(e.dnssec_ok);
            msg.edns = Some(opt);
        }
    }
}

/// Drops records section by section until the reply fits the client's size; sets TC when
/// anything was dropped. The OPT record is kept.
fn truncate(req: &Request, mut msg: Message) -> Vec<u8> {
    normalize_edns(req, &mut msg);
    let size = req.client_size();
    let answers = std::mem::take(&mut msg.answers);
    let authorities = std::mem::take(&mut msg.authorities);
    let additionals = std::mem::take(&mut msg.additionals);
    let fits = |m: &Message| m.to_vec().map(|b| b.len() <= size).unwrap_or(false);
    let mut dropped = false;
    for (section, records) in [(0, answers), (1, authorities), (2, additionals)] {
        let total = records.len();
        let mut lo = 0usize;
        let mut hi = total;
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let mut trial = msg.clone();
            match section {
                0 => trial.answers = records[..mid].to_vec(),
                1 => trial.authorities = records[..mid].to_vec(),
                _ => trial.additionals = records[..mid].to_vec(),
            }
            if fits(&trial) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo < total {
            dropped = true;
        }
        let kept = records.into_iter().take(lo).collect();
        match section {
            0 => msg.answers = kept,
            1 => msg.authorities = kept,
            _ => msg.additionals = kept,
        }
    }
    if dropped {
        msg.metadata.truncation = true;
    }
    match msg.to_vec() {
        Ok(b) if b.len() <= size || req.proto == Proto::Tcp => b,
        _ => {
            msg.answers.clear();
            msg.authorities.clear();
            msg.additionals.clear();
            msg.metadata.truncation = true;
            msg.to_vec().unwrap_or_else(|_| error_reply(req, 2))
        }
    }
}
