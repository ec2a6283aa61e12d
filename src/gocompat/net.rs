//! Go's `net.SplitHostPort` and `net.JoinHostPort`, with Go's `*net.AddrError` wording.

/// Splits `host:port` as Go's `net.SplitHostPort` does, with its error texts
/// (`address bla: missing port in address`).
pub fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let err = |why: &str| format!("address {hostport}: {why}");
    let Some(i) = hostport.rfind(':') else { return Err(err("missing port in address")) };
    let (host, j, k);
    if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else { return Err(err("missing ']' in address")) };
        if end + 1 == hostport.len() {
            return Err(err("missing port in address"));
        } else if end + 1 != i {
            if hostport.as_bytes().get(end + 1) == Some(&b':') {
                return Err(err("too many colons in address"));
            }
            return Err(err("missing port in address"));
        }
        host = hostport.get(1..end).unwrap_or("");
        j = 1;
        k = end + 1;
    } else {
        host = hostport.get(..i).unwrap_or("");
        if host.contains(':') {
            return Err(err("too many colons in address"));
        }
        j = 0;
        k = 0;
    }
    if hostport.get(j..).is_some_and(|s| s.contains('[')) {
        return Err(err("unexpected '[' in address"));
    }
    if hostport.get(k..).is_some_and(|s| s.contains(']')) {
        return Err(err("unexpected ']' in address"));
    }
    Ok((host.to_string(), hostport.get(i + 1..).unwrap_or("").to_string()))
}

/// `net.JoinHostPort`: brackets hosts that contain a colon.
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn split_host_port_matches_go() {
        assert_eq!(split_host_port("1.2.3.4:53"), Ok(("1.2.3.4".into(), "53".into())));
        assert_eq!(split_host_port("[::1]:53"), Ok(("::1".into(), "53".into())));
        assert_eq!(split_host_port("1.2.3.4:"), Ok(("1.2.3.4".into(), "".into())));
        assert_eq!(split_host_port("1.2.3.4"), Err("address 1.2.3.4: missing port in address".into()));
        assert_eq!(split_host_port("::1"), Err("address ::1: too many colons in address".into()));
        assert_eq!(split_host_port("[::1]"), Err("address [::1]: missing port in address".into()));
        assert_eq!(split_host_port("[::1]x:5"), Err("address [::1]x:5: missing port in address".into()));
        assert_eq!(split_host_port("a]:5"), Err("address a]:5: unexpected ']' in address".into()));
    }

    #[test]
    fn split_like_go() {
        assert_eq!(split_host_port(":8080"), Ok((String::new(), "8080".to_string())));
        assert_eq!(split_host_port("bla:a"), Ok(("bla".to_string(), "a".to_string())));
        assert_eq!(split_host_port("[::1]:80"), Ok(("::1".to_string(), "80".to_string())));
        assert_eq!(split_host_port("bla"), Err("address bla: missing port in address".to_string()));
        assert_eq!(split_host_port("::1:80"), Err("address ::1:80: too many colons in address".to_string()));
        assert_eq!(split_host_port("[::1]"), Err("address [::1]: missing port in address".to_string()));
        assert_eq!(split_host_port("[::1:80"), Err("address [::1:80: missing ']' in address".to_string()));
    }

    #[test]
    fn join_brackets_v6() {
        assert_eq!(join_host_port("::1", "53"), "[::1]:53");
        assert_eq!(join_host_port("1.2.3.4", "53"), "1.2.3.4:53");
    }
}
