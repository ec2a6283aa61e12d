//! The dummy interface that holds node-cache's listen addresses (node-cache `netif`), over
//! rtnetlink: created as a `dummy` link when missing, addresses added as /32 or /128 (errors
//! such as EEXIST ignored on an existing link), never set UP, deleted on teardown.
//!
//! Unlike node-cache, a kernel without the `dummy` link type (creation fails with
//! EOPNOTSUPP) gets a portless `bridge` of the same name instead, which holds local
//! addresses just as well; one line is logged when that happens. An existing link of any
//! type is adopted as it is.
//!
//! The API is blocking. Each call runs its netlink work on a private current-thread runtime,
//! on a helper thread when the caller is already inside a tokio runtime; helper threads
//! inherit the caller's network namespace.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;

use super::goparse;

/// A netlink failure, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetifError(pub String);

impl std::fmt::Display for NetifError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetifError {}

fn nl_err(e: impl std::fmt::Display) -> NetifError {
    NetifError(e.to_string())
}

/// The link type a new interface is created as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// node-cache's `dummy` link.
    Dummy,
    /// A `bridge` with no ports: the fallback on kernels without `dummy`.
    Bridge,
}

impl LinkKind {
    /// The rtnetlink kind name (`dummy`, `bridge`).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Dummy => "dummy",
            LinkKind::Bridge => "bridge",
        }
    }
}

/// Manages one dummy interface carrying `addrs`.
#[derive(Clone, Debug)]
pub struct NetifManager {
    addrs: Vec<(IpAddr, u8)>,
    /// Set once the kernel refused a `dummy` link; later creations go straight to a bridge.
    no_dummy: Arc<AtomicBool>,
}

/// Whether a failed link creation means the kernel lacks that link type.
fn is_unsupported_kind(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == libc::EOPNOTSUPP)
}

/// Creates `name` as `kind` (left DOWN).
async fn add_link(handle: &rtnetlink::Handle, name: &str, kind: LinkKind) -> Result<(), rtnetlink::Error> {
    let msg = match kind {
        LinkKind::Dummy => rtnetlink::LinkDummy::new(name).build(),
        LinkKind::Bridge => rtnetlink::LinkBridge::new(name).build(),
    };
    handle.link().add(msg).execute().await
}

/// Runs `fut` to completion on a fresh current-thread runtime, off any ambient runtime.
fn block_on<T: Send>(fut: impl std::future::Future<Output = Result<T, NetifError>> + Send) -> Result<T, NetifError> {
    let go = move || -> Result<T, NetifError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(nl_err)?;
        rt.block_on(fut)
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(go).join().unwrap_or_else(|_| Err(NetifError("netlink thread panicked".into()))))
    } else {
        go()
    }
}

async fn connect() -> Result<rtnetlink::Handle, NetifError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(nl_err)?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn link_index(handle: &rtnetlink::Handle, name: &str) -> Result<Option<u32>, NetifError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => Ok(None),
        Err(e) => Err(nl_err(e)),
    }
}

impl NetifManager {
    /// A manager for `ips`: IPv4 (and IPv4-mapped) addresses get /32, IPv6 /128.
    pub fn new(ips: &[IpAddr]) -> Self {
        let addrs = ips
            .iter()
            .map(|ip| match goparse::to4(ip) {
                Some(v4) => (IpAddr::V4(v4), 32),
                None => (*ip, 128),
            })
            .collect();
        NetifManager { addrs, no_dummy: Arc::new(AtomicBool::new(false)) }
    }

    /// The kind the next missing interface will be created as: `Dummy` until the kernel
    /// refused one, then `Bridge`.
    pub fn create_kind(&self) -> LinkKind {
        if self.no_dummy.load(Ordering::Relaxed) {
            LinkKind::Bridge
        } else {
            LinkKind::Dummy
        }
    }

    /// The addresses with their prefix lengths.
    pub fn addrs(&self) -> &[(IpAddr, u8)] {
        &self.addrs
    }

    /// node-cache's `EnsureDummyDevice`: if `name` exists (any link type), re-adds every
    /// address ignoring errors and returns `(true, Ok)`; otherwise creates it with
    /// [`NetifManager::add_dummy_device`] and returns `(false, result)`.
    pub fn ensure_dummy_device(&self, name: &str) -> (bool, Result<(), NetifError>) {
        let addrs = self.addrs.clone();
        let name_owned = name.to_string();
        let found = block_on(async move {
            let handle = connect().await?;
            match link_index(&handle, &name_owned).await {
                Ok(Some(index)) => {
                    for (ip, prefix) in addrs {
                        let _ = handle.address().add(index, ip, prefix).execute().await;
                    }
                    Ok(true)
                }
                _ => Ok(false),
            }
        });
        match found {
            Ok(true) => (true, Ok(())),
            Ok(false) => (false, self.add_dummy_device(name)),
            Err(e) => (false, Err(e)),
        }
    }

    /// node-cache's `AddDummyDevice`: fails if `name` exists; otherwise creates a `dummy`
    /// link (left DOWN) and adds the addresses, stopping at the first error. When the kernel
    /// has no `dummy` type, creates a portless `bridge` instead (logged once per manager).
    pub fn add_dummy_device(&self, name: &str) -> Result<(), NetifError> {
        let addrs = self.addrs.clone();
        let name = name.to_string();
        let no_dummy = Arc::clone(&self.no_dummy);
        block_on(async move {
            let handle = connect().await?;
            if let Ok(Some(_)) = link_index(&handle, &name).await {
                return Err(NetifError(format!("Link {name} exists")));
            }
            let first = if no_dummy.load(Ordering::Relaxed) { LinkKind::Bridge } else { LinkKind::Dummy };
            match add_link(&handle, &name, first).await {
                Ok(()) => {}
                Err(e) if first == LinkKind::Dummy && is_unsupported_kind(&e) => {
                    no_dummy.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        "Kernel has no dummy link type ({e}); creating interface {name} as a bridge with no ports instead"
                    );
                    add_link(&handle, &name, LinkKind::Bridge).await.map_err(nl_err)?;
                }
                Err(e) => return Err(nl_err(e)),
            }
            let index =
                link_index(&handle, &name).await?.ok_or_else(|| NetifError(format!("Link not found: {name}")))?;
            for (ip, prefix) in addrs {
                handle.address().add(index, ip, prefix).execute().await.map_err(nl_err)?;
            }
            Ok(())
        })
    }

    /// node-cache's `RemoveDummyDevice`: deletes the link `name`, whatever its type.
    pub fn remove_dummy_device(&self, name: &str) -> Result<(), NetifError> {
        let name = name.to_string();
        block_on(async move {
            let handle = connect().await?;
            let index = link_index(&handle, &name).await?.ok_or_else(|| NetifError("Link not found".into()))?;
            handle.link().del(index).execute().await.map_err(nl_err)
        })
    }

    /// Whether a link called `name` exists.
    pub fn link_exists(name: &str) -> Result<bool, NetifError> {
        let name = name.to_string();
        block_on(async move {
            let handle = connect().await?;
            Ok(link_index(&handle, &name).await?.is_some())
        })
    }
}
