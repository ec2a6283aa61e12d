//! `edns0` rewrite rules: set, append, replace or unset an EDNS0 option (local, NSID, client
//! subnet) in the query, optionally reverting it in the response.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption, NSIDPayload};

use crate::server::Request;

/// The option a rule works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A local/experimental option: code and data (bytes or a `{variable}`).
    Local(u16, Data),
    /// NSID (sent empty).
    Nsid,
    /// Client subnet from the client address with these prefix lengths.
    Subnet(u8, u8),
}

/// Data for a local option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Fixed bytes.
    Bytes(Vec<u8>),
    /// A `{variable}` evaluated per query.
    Var(String),
}

/// One `edns0` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edns0Rule {
    /// set, append, replace or unset.
    pub action: String,
    /// Which option.
    pub kind: Kind,
    /// Undo the change in the response.
    pub revert: bool,
}

/// A response-side undo of an edns0 rule.
#[derive(Debug, Clone)]
pub enum Revert {
    /// Remove the option with this code from the response OPT.
    Remove(u16),
    /// Put back the original option (by code) in the response OPT.
    Restore(u16, EdnsOption),
}

const VARIABLES: &[&str] =
    &["{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}", "{server_port}"];

fn parse_code(s: &str) -> Result<u16, String> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    u16::from_str_radix(digits, radix).map_err(|_| format!("strconv.ParseUint: parsing {s:?}: invalid syntax"))
}

/// Builds an edns0 rule from the arguments after `edns0` (CoreDNS's `newEdns0Rule`).
pub fn new_rule(args: &[String]) -> Result<Edns0Rule, String> {
    if args.len() < 2 {
        return Err("too few arguments for an EDNS0 rule".into());
    }
    let rule_type = args[0].to_ascii_lowercase();
    let action = args[1].to_ascii_lowercase();
    match action.as_str() {
        "append" | "replace" | "set" => {}
        "unset" => {
            let kind = match rule_type.as_str() {
                "local" if args.len() == 3 => Kind::Local(parse_code(&args[2])?, Data::Bytes(Vec::new())),
                "local" => return Err("local unset action requires exactly two arguments".into()),
                "nsid" if args.len() == 2 => Kind::Nsid,
                "nsid" => return Err("nsid unset action requires exactly one argument".into()),
                "subnet" if args.len() == 2 => Kind::Subnet(0, 0),
                "subnet" => return Err("subnet unset action requires exactly one argument".into()),
                _ => return Err(format!("invalid rule type {rule_type:?}")),
            };
            return Ok(Edns0Rule { action, kind, revert: false });
        }
        _ => return Err(format!("invalid action: {action:?}")),
    }
    let mut args = args.to_vec();
    let revert = args.last().is_some_and(|a| a == "revert");
    if revert {
        args.pop();
    }
    let kind = match rule_type.as_str() {
        "local" => {
            if args.len() != 4 {
                return Err("EDNS0 local rules require three or four args".into());
            }
            let code = parse_code(&args[2])?;
            let data = &args[3];
            if data.starts_with('{') && data.ends_with('}') {
                let label = &data[1..data.len() - 1];
                let valid_label = label.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
                if !VARIABLES.contains(&data.as_str()) && !valid_label {
                    return Err(format!("unsupported variable name {data:?}"));
                }
                Kind::Local(code, Data::Var(data.clone()))
            } else if let Some(h) = data.strip_prefix("0x") {
                Kind::Local(code, Data::Bytes(hex::decode(h).map_err(|e| format!("encoding/hex: {e}"))?))
            } else {
                Kind::Local(code, Data::Bytes(data.as_bytes().to_vec()))
            }
        }
        "nsid" => {
            if args.len() != 2 {
                return Err("EDNS0 NSID rules can accept no more than one arg".into());
            }
            Kind::Nsid
        }
        "subnet" => {
            if args.len() != 4 {
                return Err("EDNS0 subnet rules require three or four args".into());
            }
            let v4 = parse_code(&args[2])?;
            if v4 > 32 {
                return Err(format!("invalid IPv4 bit mask length {v4}"));
            }
            let v6 = parse_code(&args[3])?;
            if v6 > 128 {
                return Err(format!("invalid IPv6 bit mask length {v6}"));
            }
            Kind::Subnet(v4 as u8, v6 as u8)
        }
        _ => return Err(format!("invalid rule type {rule_type:?}")),
    };
    Ok(Edns0Rule { action, kind, revert })
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn variable_data(var: &str, req: &Request) -> Option<Vec<u8>> {
    Some(match var {
        "{qname}" => req.qname.as_bytes().to_vec(),
        "{qtype}" => req.qtype.to_be_bytes().to_vec(),
        "{client_ip}" => ip_bytes(req.client.ip()),
        "{server_ip}" => ip_bytes(req.local.ip()),
        "{client_port}" => req.client.port().to_be_bytes().to_vec(),
        "{server_port}" => req.local.port().to_be_bytes().to_vec(),
        "{protocol}" => req.proto.as_str().as_bytes().to_vec(),
        other => {
            let v = req.get_metadata(&other[1..other.len() - 1])?;
            if v.is_empty() {
                return None;
            }
            v.as_bytes().to_vec()
        }
    })
}

fn subnet_for(req: &Request, v4: u8, v6: u8) -> EdnsOption {
    let ip = req.client.ip().to_canonical();
    let (masked, bits) = match ip {
        IpAddr::V4(a) => {
            let m = if v4 == 0 { 0 } else { u32::MAX << (32 - v4 as u32) };
            (IpAddr::V4((u32::from(a) & m).into()), v4)
        }
        IpAddr::V6(a) => {
            let m = if v6 == 0 { 0 } else { u128::MAX << (128 - v6 as u32) };
            (IpAddr::V6((u128::from(a) & m).into()), v6)
        }
    };
    EdnsOption::Subnet(ClientSubnet::new(masked, bits, 0))
}

impl Edns0Rule {
    /// Applies the rule to the query `msg` (adding an OPT of 4096 when there is none, as CoreDNS
    /// does); returns the response undo steps, or None when the rule did not apply.
    pub fn apply(&self, msg: &mut Message, req: &Request) -> Option<Vec<Revert>> {
        let (code, new_opt) = match &self.kind {
            Kind::Local(code, Data::Bytes(b)) => (*code, EdnsOption::Unknown(*code, b.clone())),
            Kind::Local(code, Data::Var(v)) => (*code, EdnsOption::Unknown(*code, variable_data(v, req)?)),
            Kind::Nsid => (3, EdnsOption::NSID(NSIDPayload::new(Vec::<u8>::new()).ok()?)),
            Kind::Subnet(v4, v6) => (8, subnet_for(req, *v4, *v6)),
        };
        let edns = msg.edns.get_or_insert_with(|| {
            let mut e = Edns::new();
            e.set_max_payload(4096);
            e
        });
        let opts = &mut edns.options_mut().options;
        if self.action == "unset" {
            opts.retain(|(c, _)| u16::from(*c) != code);
            return Some(Vec::new());
        }
        if let Some(slot) = opts.iter_mut().find(|(c, _)| u16::from(*c) == code) {
            if self.action == "replace" || self.action == "set" {
                let mut undo = Vec::new();
                if self.revert {
                    undo.push(Revert::Restore(code, slot.1.clone()));
                }
                *slot = (EdnsCode::from(code), new_opt);
                return Some(undo);
            }
            if matches!(self.kind, Kind::Local(_, Data::Var(_))) {
                return None;
            }
        }
        if self.action == "append" || self.action == "set" {
            opts.push((EdnsCode::from(code), new_opt));
            return Some(if self.revert { vec![Revert::Remove(code)] } else { Vec::new() });
        }
        None
    }
}

/// Applies response undo steps to `m`'s OPT.
pub fn revert(m: &mut Message, steps: &[Revert]) {
    let Some(edns) = m.edns.as_mut() else { return };
    let opts = &mut edns.options_mut().options;
    for s in steps.iter().rev() {
        match s {
            Revert::Remove(code) => {
                if let Some(i) = opts.iter().position(|(c, _)| u16::from(*c) == *code) {
                    opts.remove(i);
                }
            }
            Revert::Restore(code, opt) => {
                if let Some(slot) = opts.iter_mut().find(|(c, _)| u16::from(*c) == *code) {
                    slot.1 = opt.clone();
                }
            }
        }
    }
}
