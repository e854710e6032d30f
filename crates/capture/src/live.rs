//! Live capture from a network interface (a SPAN/mirror port) through libpcap.
//!
//! The interface is only ever read: nothing here can transmit. Packets are lent by
//! libpcap's ring until the next read, so the source copies each into its batch
//! ([`crate::Batcher::push_captured`]). A read returns `None` after the read timeout on
//! a quiet network, so that the caller can flush batches and tick the clock.
//!
//! The handle is non-blocking and the wait is a `poll(2)` with the read timeout: on
//! Linux, libpcap hands the timeout to the kernel's TPACKET_V3 block timer and then
//! blocks without one, and that timer only retires blocks that hold packets, so a
//! blocking read on a silent link would never return (and a stop would never be seen).

use std::time::Duration;

use otwatch_event::Timestamp;

use crate::LinkType;

/// How to open an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    pub interface: String,
    /// Bytes kept of each packet (default 65535: whole packets).
    pub snaplen: u32,
    /// The kernel's capture buffer (default 128 MiB: about 100 ms of a saturated
    /// 10 GbE link, so a burst waits there rather than being dropped).
    pub buffer_bytes: u32,
    /// A BPF filter (tcpdump syntax), applied in the kernel.
    pub bpf: Option<String>,
    /// How long a read waits for packets before returning with none (default 10 ms).
    pub read_timeout: Duration,
    /// Promiscuous mode (default true: a mirror port's traffic is addressed to others).
    pub promiscuous: bool,
}

impl LiveConfig {
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            snaplen: 65_535,
            buffer_bytes: 128 << 20,
            bpf: None,
            read_timeout: Duration::from_millis(10),
            promiscuous: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{interface}: cannot capture: {message}")]
    Open { interface: String, message: String },
    #[error(
        "{interface}: link type {dlt} is not supported (Ethernet, Linux cooked, loopback and raw IP are)"
    )]
    LinkType { interface: String, dlt: i32 },
    #[error("{interface}: BPF filter '{filter}': {message}")]
    Filter {
        interface: String,
        filter: String,
        message: String,
    },
    #[error("{interface}: capture failed: {message}")]
    Read { interface: String, message: String },
}

/// One captured packet, lent until the next read.
#[derive(Debug, Clone, Copy)]
pub struct LivePacket<'a> {
    pub ts: Timestamp,
    /// Its length on the wire (`data` may be shorter: the snap length).
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// The capture's own counters since it was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets the kernel passed the filter.
    pub received: u64,
    /// Dropped by the kernel: the capture buffer was full.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// An open interface.
pub struct LiveCapture {
    cap: ::pcap::Capture<::pcap::Active>,
    interface: String,
    linktype: LinkType,
    read_timeout: rustix::event::Timespec,
    /// The last read found a packet: there may be more without waiting.
    pending: bool,
    /// The last raw 32-bit counters, to total them across wrap-arounds.
    raw: (u32, u32, u32),
    totals: KernelStats,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("interface", &self.interface)
            .field("linktype", &self.linktype)
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

impl LiveCapture {
    /// Opens and activates the interface (needs CAP_NET_RAW, or root; see
    /// docs/deploy.md), and applies the filter.
    pub fn open(config: &LiveConfig) -> Result<LiveCapture, LiveError> {
        let interface = config.interface.clone();
        let open_err = |e: ::pcap::Error| LiveError::Open {
            interface: interface.clone(),
            message: e.to_string(),
        };
        let timeout_ms = i32::try_from(config.read_timeout.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let mut cap = ::pcap::Capture::from_device(config.interface.as_str())
            .map_err(open_err)?
            .promisc(config.promiscuous)
            .snaplen(i32::try_from(config.snaplen).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(config.buffer_bytes).unwrap_or(i32::MAX))
            .timeout(timeout_ms)
            .precision(::pcap::Precision::Nano)
            .open()
            .and_then(::pcap::Capture::setnonblock)
            .map_err(open_err)?;
        let dlt = cap.get_datalink().0;
        let linktype = u32::try_from(dlt)
            .ok()
            .and_then(LinkType::from_dlt)
            .ok_or_else(|| LiveError::LinkType {
                interface: interface.clone(),
                dlt,
            })?;
        if let Some(filter) = &config.bpf {
            cap.filter(filter, true).map_err(|e| LiveError::Filter {
                interface: interface.clone(),
                filter: filter.clone(),
                message: e.to_string(),
            })?;
        }
        let read_timeout = rustix::event::Timespec {
            tv_sec: i64::try_from(config.read_timeout.as_secs()).unwrap_or(1),
            tv_nsec: i64::from(config.read_timeout.subsec_nanos()),
        };
        Ok(LiveCapture {
            cap,
            interface,
            linktype,
            read_timeout,
            pending: false,
            raw: (0, 0, 0),
            totals: KernelStats::default(),
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn linktype(&self) -> LinkType {
        self.linktype
    }

    /// The next packet, or `None` when the read timeout passed without one.
    pub fn next_packet(&mut self) -> Result<Option<LivePacket<'_>>, LiveError> {
        // After a packet, read again at once; after an empty read, wait.
        if !self.pending && !self.wait()? {
            return Ok(None);
        }
        match self.cap.next_packet() {
            Ok(p) => {
                self.pending = true;
                // With nanosecond precision the "microseconds" field holds nanoseconds.
                // time_t and suseconds_t are i64 here but narrower elsewhere.
                #[allow(clippy::useless_conversion)]
                let secs = i64::from(p.header.ts.tv_sec);
                #[allow(clippy::useless_conversion)]
                let nanos = i64::from(p.header.ts.tv_usec);
                Ok(Some(LivePacket {
                    ts: Timestamp::from_nanos(
                        secs.saturating_mul(1_000_000_000).saturating_add(nanos),
                    ),
                    orig_len: p.header.len,
                    data: p.data,
                }))
            }
            // Non-blocking: nothing to read now.
            Err(::pcap::Error::TimeoutExpired) => {
                self.pending = false;
                Ok(None)
            }
            Err(e) => Err(LiveError::Read {
                interface: self.interface.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Waits up to the read timeout for the descriptor to become readable.
    fn wait(&mut self) -> Result<bool, LiveError> {
        let mut fds = [rustix::event::PollFd::new(
            &self.cap,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&self.read_timeout)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(LiveError::Read {
                interface: self.interface.clone(),
                message: format!("poll: {e}"),
            }),
        }
    }

    /// The capture's counters since it was opened. libpcap's are 32-bit and wrap
    /// (after 4 G packets: hours on a busy 10 GbE link); these are totalled in 64 bits,
    /// which holds as long as this is called at least once per wrap.
    pub fn stats(&mut self) -> Result<KernelStats, LiveError> {
        let s = self.cap.stats().map_err(|e| LiveError::Read {
            interface: self.interface.clone(),
            message: e.to_string(),
        })?;
        let (r, d, i) = self.raw;
        self.totals.received += u64::from(s.received.wrapping_sub(r));
        self.totals.dropped += u64::from(s.dropped.wrapping_sub(d));
        self.totals.if_dropped += u64::from(s.if_dropped.wrapping_sub(i));
        self.raw = (s.received, s.dropped, s.if_dropped);
        Ok(self.totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_a_clear_error() {
        let err = LiveCapture::open(&LiveConfig::new("otw-no-such-if0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("otw-no-such-if0: cannot capture:"), "{err}");
    }

    #[test]
    fn defaults_suit_a_mirror_port() {
        let c = LiveConfig::new("eth1");
        assert_eq!(c.snaplen, 65_535);
        assert!(c.promiscuous);
        assert!(c.buffer_bytes >= 64 << 20);
        assert!(c.read_timeout <= Duration::from_millis(50));
    }
}
