//! Replies the server writes itself (CoreDNS's errorFunc) and the scrub applied to every reply:
//! EDNS normalisation and truncation to the client's buffer.

use hickory_proto::op::{Edns, Message};

use super::request::{Proto, Request};
use super::wire::{self, bits};

/// EDNS option codes CoreDNS echoes from the query when it reuses the client's OPT
/// (`request/edns0.go` supportedOptions: NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING).
const ECHOED_OPTIONS: [u16; 5] = [3, 9, 10, 11, 12];

/// Appends the options CoreDNS echoes from raw OPT RDATA, each as miekg re-packs it: EXPIRE is
/// empty or its first 4 octets, a TCP-KEEPALIVE with a zero (or no) timeout is empty, the others
/// are copied verbatim.
fn push_echoed_options(rdata: &[u8], out: &mut Vec<u8>) {
    let mut off = 0;
    while off + 4 <= rdata.len() {
        let code = u16::from_be_bytes([rdata[off], rdata[off + 1]]);
        let len = u16::from_be_bytes([rdata[off + 2], rdata[off + 3]]) as usize;
        let end = (off + 4 + len).min(rdata.len());
        let body = &rdata[off + 4..end];
        if ECHOED_OPTIONS.contains(&code) {
            let body = match code {
                9 if body.len() >= 4 => &body[..4],
                11 if body.len() != 2 || body == [0, 0] => &[][..],
                _ => body,
            };
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(body);
        }
        off = end;
    }
}

/// The DO and Z bits of the last OPT in the additional section of `msg` (the one miekg's
/// `IsEdns0` returns), masked as SizeAndDo keeps them (`& 0xff00` of the TTL's low half).
pub fn opt_flags(msg: &[u8]) -> Option<u16> {
    let (_, an, ns, _) = wire::counts(msg);
    let rrs = wire::records(msg)?;
    let first_additional = usize::from(an) + usize::from(ns);
    let opt = rrs.iter().skip(first_additional).rev().find(|r| r.rtype == wire::TYPE_OPT)?;
    let f = opt.fixed;
    Some(u16::from_be_bytes([*msg.get(f + 6)?, *msg.get(f + 7)?]) & 0xff00)
}

/// The client's OPT as CoreDNS echoes it.
fn client_opt(req: &Request, out: &mut Vec<u8>) {
    if let Some(e) = &req.edns {
        let z = opt_flags(&req.wire).unwrap_or(0) & 0x7f00;
        let flags = z | if e.dnssec_ok { 0x8000 } else { 0 };
        encode_client_opt(e.udp_size, flags, &e.options, out);
    }
}

/// Appends the client's OPT as CoreDNS's SizeAndDo reuses it when the reply has none: root
/// owner, the client's UDP size verbatim, version and extended rcode 0, the client's DO and Z
/// bits (`flags`, masked with `0xff00`), and the supported options echoed. The caller bumps
/// ARCOUNT.
pub fn encode_client_opt(udp_size: u16, flags: u16, options: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&wire::TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&u32::from(flags & 0xff00).to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    push_echoed_options(options, out);
    let rdlen = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
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

/// The last OPT in the additional section of `msg`, as a record position.
fn last_opt(msg: &[u8], rrs: &[wire::RrPos]) -> Option<wire::RrPos> {
    let (_, an, ns, _) = wire::counts(msg);
    rrs.iter().skip(usize::from(an) + usize::from(ns)).rev().find(|r| r.rtype == wire::TYPE_OPT).copied()
}

/// Overwrites the CLASS (UDP size) and, when given, the TTL of the reply's OPT.
fn patch_opt(msg: &mut [u8], udp_size: u16, ttl: Option<u32>) {
    let Some(rrs) = wire::records(msg) else { return };
    let Some(opt) = last_opt(msg, &rrs) else { return };
    let f = opt.fixed;
    if let Some(class) = msg.get_mut(f + 2..f + 4) {
        class.copy_from_slice(&udp_size.to_be_bytes());
    }
    if let (Some(ttl), Some(field)) = (ttl, msg.get_mut(f + 4..f + 8)) {
        field.copy_from_slice(&ttl.to_be_bytes());
    }
}

/// Applies the scrub writer (CoreDNS `request.ScrubWriter`: SizeAndDo, then Scrub) to a reply in
/// wire form: the client's ID; a reply OPT gets the client's UDP size and version 0 with its
/// DO/Z bits (`& 0xff00`, DO added if the client set it) and extended rcode kept; without one the
/// client's OPT is appended; then truncation to the client's size with TC.
pub fn scrub_wire(req: &Request, reply: Vec<u8>) -> Vec<u8> {
    scrub_wire_at(req, reply, true)
}

fn scrub_wire_at(req: &Request, mut reply: Vec<u8>, allow_slow: bool) -> Vec<u8> {
    if reply.len() < wire::HEADER_LEN {
        return error_reply(req, 2);
    }
    wire::set_id(&mut reply, req.id());
    if let Some(e) = &req.edns {
        let Some(rrs) = wire::records(&reply) else {
            return if allow_slow { scrub_slow(req, &reply) } else { error_reply(req, 2) };
        };
        match last_opt(&reply, &rrs) {
            Some(opt) if opt.fixed == opt.start + 1 && reply[opt.start] == 0 => {
                let f = opt.fixed;
                reply[f + 2..f + 4].copy_from_slice(&e.udp_size.to_be_bytes());
                let old = u32::from_be_bytes([reply[f + 4], reply[f + 5], reply[f + 6], reply[f + 7]]);
                let ttl = (old & 0xff00_ff00) | if e.dnssec_ok { 0x8000 } else { 0 };
                reply[f + 4..f + 8].copy_from_slice(&ttl.to_be_bytes());
            }
            Some(_) if allow_slow => return scrub_slow(req, &reply),
            Some(_) => return error_reply(req, 2),
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
    let opt = req.edns.as_ref().and_then(|e| {
        let rrs = wire::records(&reply)?;
        let o = last_opt(&reply, &rrs)?;
        let f = o.fixed;
        Some((e.udp_size, u32::from_be_bytes([reply[f + 4], reply[f + 5], reply[f + 6], reply[f + 7]])))
    });
    match Message::from_vec(&reply) {
        Ok(m) => truncate(req, m, opt),
        Err(_) => error_reply(req, 2),
    }
}

/// Scrubs a reply given as a message. A message without OPT is encoded and scrubbed in wire
/// form (so the client's OPT is echoed as for any other reply); one with an OPT gets the
/// client's UDP size verbatim.
pub fn scrub_message(req: &Request, mut msg: Message) -> Vec<u8> {
    msg.metadata.id = req.id();
    if req.edns.is_some() && msg.edns.is_none() {
        return match msg.to_vec() {
            Ok(bytes) => scrub_wire_at(req, bytes, false),
            Err(_) => error_reply(req, 2),
        };
    }
    normalize_edns(req, &mut msg);
    let size = req.edns.as_ref().map(|e| e.udp_size);
    match msg.to_vec() {
        Ok(mut bytes) if bytes.len() <= req.client_size() => {
            if let Some(size) = size {
                patch_opt(&mut bytes, size, None);
            }
            bytes
        }
        Ok(_) => truncate(req, msg, None),
        Err(_) => error_reply(req, 2),
    }
}

fn scrub_slow(req: &Request, reply: &[u8]) -> Vec<u8> {
    match Message::from_vec(reply) {
        Ok(m) => scrub_message(req, m),
        Err(_) => error_reply(req, 2),
    }
}

/// CoreDNS's SizeAndDo on a message (hickory raises sizes below 512; the wire is patched after
/// encoding).
fn normalize_edns(req: &Request, msg: &mut Message) {
    let Some(e) = &req.edns else { return };
    match msg.edns.as_mut() {
        Some(opt) => {
            opt.set_version(0);
            opt.set_max_payload(e.udp_size);
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
/// anything was dropped. The OPT record is kept; `opt` (UDP size, TTL) is written back into it
/// after encoding, else the client's UDP size.
fn truncate(req: &Request, mut msg: Message, opt: Option<(u16, u32)>) -> Vec<u8> {
    let mut out = truncate_message(req, &mut msg);
    match (opt, &req.edns) {
        (Some((size, ttl)), _) => patch_opt(&mut out, size, Some(ttl)),
        (None, Some(e)) => patch_opt(&mut out, e.udp_size, None),
        (None, None) => {}
    }
    out
}

fn truncate_message(req: &Request, msg: &mut Message) -> Vec<u8> {
    normalize_edns(req, msg);
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn client_opt_is_rebuilt_as_miekg_packs_it() {
        let options = [
            &[0u8, 9, 0, 6, 0, 0, 1, 0, 9, 9][..], // EXPIRE with 6 octets: the first 4
            &[0, 11, 0, 2, 0, 0],                  // TCP-KEEPALIVE timeout 0: empty
            &[0, 11, 0, 2, 0, 5],                  // TCP-KEEPALIVE timeout 5: kept
            &[0, 8, 0, 4, 0, 0, 0, 0],             // ECS: not echoed
            &[0, 15, 0, 2, 0, 1],                  // EDE: not echoed
            &[0, 3, 0, 2, 0xab, 0xcd],             // NSID: verbatim
        ]
        .concat();
        let mut out = Vec::new();
        encode_client_opt(64, 0xffff, &options, &mut out);
        let rdata =
            [&[0u8, 9, 0, 4, 0, 0, 1, 0][..], &[0, 11, 0, 0], &[0, 11, 0, 2, 0, 5], &[0, 3, 0, 2, 0xab, 0xcd]].concat();
        let mut want = vec![0, 0, 41, 0, 64, 0, 0, 0xff, 0, 0, rdata.len() as u8];
        want.extend_from_slice(&rdata);
        assert_eq!(out, want);
    }
}
