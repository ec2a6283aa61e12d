//! Keeps the resident set to what the server uses: code and read-only data that only start-up
//! touched (flag parsing, Corefile parsing, plugin setup) is handed back to the page cache once
//! the servers are up, and later page faults on those mappings bring in single pages instead of
//! the kernel's default read-around block. Pages that serve queries are faulted back in on their
//! first use (minor faults from the page cache); nothing is written, nothing changes behaviour.

use std::fs;

/// One file-backed, non-writable mapping of this process.
struct Mapping {
    start: usize,
    len: usize,
}

/// The file-backed mappings that cannot be written (code, read-only data) from
/// `/proc/self/maps` lines like `7f..-7f.. r-xp 00000000 fd:01 1234 /usr/lib/libc.so.6`.
fn read_only_file_mappings(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?;
            if !path.starts_with('/') || perms.as_bytes().get(1) == Some(&b'w') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = usize::from_str_radix(a, 16).ok()?;
            let end = usize::from_str_radix(b, 16).ok()?;
            (end > start).then_some(Mapping { start, len: end - start })
        })
        .collect()
}

fn advise_all(advice: libc::c_int) {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else { return };
    for m in read_only_file_mappings(&maps) {
        // SAFETY: the range is one of this process's own mappings; MADV_RANDOM and
        // MADV_PAGEOUT only change paging of clean file-backed pages, never their contents.
        unsafe {
            libc::madvise(m.start as *mut libc::c_void, m.len, advice);
        }
    }
}

/// Call first thing in `main`: later faults on code and read-only data map one page each.
pub fn fault_single_pages() {
    advise_all(libc::MADV_RANDOM);
}

/// Call once the servers are up: drops start-up-only code and data from the resident set.
pub fn release_startup_pages() {
    advise_all(libc::MADV_PAGEOUT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn only_read_only_file_mappings_are_taken() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 11 /usr/bin/nodecache
55d0c0100000-55d0c0500000 r-xp 00100000 fd:01 11 /usr/bin/nodecache
55d0c0600000-55d0c0610000 rw-p 00600000 fd:01 11 /usr/bin/nodecache
55d0c1000000-55d0c1100000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 [vdso]
7f0000002000-7f0000003000 ---p 00000000 00:00 0
";
        let got: Vec<(usize, usize)> = read_only_file_mappings(maps).iter().map(|m| (m.start, m.len)).collect();
        assert_eq!(got, vec![(0x55d0c0000000, 0x100000), (0x55d0c0100000, 0x400000)]);
    }
}
