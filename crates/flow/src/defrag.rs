//! IP fragment reassembly, bounded.
//!
//! etherparse 0.21 has a `defrag` module, but its pool is unbounded by its own account
//! ("NOT safe against Out of Memory attacks") and its buffer lets the *last* copy of
//! overlapping bytes win. This one is bounded on every axis an attacker controls
//! (datagrams in progress, fragments per datagram, bytes held, age) and lets the
//! *first* copy win, as the TCP reassembly does, so that a later overlapping fragment
//! cannot rewrite what was already accepted.

use std::collections::HashMap;
use std::net::IpAddr;

use otwatch_event::Timestamp;

use crate::config::{nanos, FlowConfig};
use crate::decode::IpFragment;
use crate::stats::FlowStats;

/// Largest reassembled IP payload: the 16-bit total length (jumbograms are not
/// reassembled).
const MAX_DATAGRAM: u32 = 65_535;

/// Expired datagrams are looked for at most this often (packet time).
const SWEEP_INTERVAL_NS: i64 = 1_000_000_000;

/// Reused buffers kept for the next datagrams.
const MAX_FREE_BUFFERS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Debug)]
struct Datagram {
    first_seen: i64,
    data: Vec<u8>,
    /// Byte ranges received, sorted and disjoint (merged when they touch).
    have: Vec<(u32, u32)>,
    /// Payload length, once the last fragment (MF = 0) was seen.
    end: Option<u32>,
    fragments: usize,
}

/// Datagrams being reassembled.
#[derive(Debug, Default)]
pub(crate) struct Defragmenter {
    map: HashMap<FragKey, Datagram>,
    bytes: usize,
    free: Vec<Vec<u8>>,
    last_sweep: i64,
}

impl Defragmenter {
    /// Adds a fragment; returns the datagram's payload when this fragment completed it.
    /// Give the buffer back with [`Defragmenter::recycle`].
    pub(crate) fn add(
        &mut self,
        cfg: &FlowConfig,
        now: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        frag: &IpFragment<'_>,
        stats: &mut FlowStats,
    ) -> Option<Vec<u8>> {
        let now = now.as_nanos();
        if now.saturating_sub(self.last_sweep) >= SWEEP_INTERVAL_NS {
            self.last_sweep = now;
            self.expire(cfg, now, stats);
        }
        let len = u32::try_from(frag.payload.len()).unwrap_or(u32::MAX);
        let start = frag.offset;
        let end = start.saturating_add(len);
        // Beyond the largest datagram, or a non-final fragment whose length is not a
        // multiple of 8 (the next offset could not follow it): invalid, dropped alone.
        if end > MAX_DATAGRAM || (frag.more && len % 8 != 0) {
            stats.fragments_dropped += 1;
            return None;
        }
        let key = FragKey {
            src,
            dst,
            id: frag.id,
            proto: frag.ip_proto,
        };
        if !self.map.contains_key(&key) {
            if self.map.len() >= cfg.max_fragmented_datagrams {
                self.drop_oldest(stats);
            }
            if cfg.max_fragmented_datagrams == 0 {
                stats.fragments_dropped += 1;
                return None;
            }
            let data = self.free.pop().unwrap_or_default();
            self.map.insert(
                key,
                Datagram {
                    first_seen: now,
                    data,
                    have: Vec::new(),
                    end: None,
                    fragments: 0,
                },
            );
        }
        let dg = self.map.get_mut(&key)?;
        dg.fragments += 1;
        let conflicting_end = match dg.end {
            // A second last fragment must agree; data must not go past the end.
            Some(e) => (!frag.more && end != e) || end > e,
            None => !frag.more && dg.have.last().is_some_and(|&(_, e)| e > end),
        };
        if dg.fragments > cfg.max_fragments_per_datagram || conflicting_end {
            self.remove(&key, stats);
            return None;
        }
        if !frag.more {
            dg.end = Some(end);
        }
        let end_us = end as usize;
        if dg.data.len() < end_us {
            let growth = end_us - dg.data.len();
            if self.bytes.saturating_add(growth) > cfg.max_fragment_bytes_total {
                self.remove(&key, stats);
                return None;
            }
            self.bytes += growth;
            dg.data.resize(end_us, 0);
        }
        // First copy wins: only bytes not received yet are written.
        let mut cur = start;
        for &(a, b) in &dg.have {
            if b <= cur {
                continue;
            }
            if a >= end {
                break;
            }
            if a > cur {
                copy_range(&mut dg.data, frag.payload, start, cur, a);
            }
            cur = cur.max(b);
        }
        if cur < end {
            copy_range(&mut dg.data, frag.payload, start, cur, end);
        }
        insert_range(&mut dg.have, start, end);
        let complete = matches!((dg.end, dg.have.as_slice()), (Some(e), [(0, b)]) if *b == e);
        if !complete {
            return None;
        }
        let dg = self.map.remove(&key)?;
        self.bytes = self.bytes.saturating_sub(dg.data.len());
        stats.fragments_reassembled += 1;
        let mut data = dg.data;
        data.truncate(dg.end.unwrap_or(0) as usize);
        Some(data)
    }

    /// Returns a reassembled payload's buffer for reuse.
    pub(crate) fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < MAX_FREE_BUFFERS {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Datagrams in progress.
    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn expire(&mut self, cfg: &FlowConfig, now: i64, stats: &mut FlowStats) {
        let timeout = nanos(cfg.fragment_timeout);
        let mut freed = 0usize;
        self.map.retain(|_, dg| {
            let keep = now.saturating_sub(dg.first_seen) < timeout;
            if !keep {
                stats.fragments_dropped += dg.fragments as u64;
                freed += dg.data.len();
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
    }

    fn drop_oldest(&mut self, stats: &mut FlowStats) {
        // Only when the table is full: a scan of at most `max_fragmented_datagrams`.
        let oldest = self
            .map
            .iter()
            .min_by_key(|(k, dg)| (dg.first_seen, k.id))
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.remove(&k, stats);
        }
    }

    fn remove(&mut self, key: &FragKey, stats: &mut FlowStats) {
        if let Some(dg) = self.map.remove(key) {
            stats.fragments_dropped += dg.fragments as u64;
            self.bytes = self.bytes.saturating_sub(dg.data.len());
            self.recycle(dg.data);
        }
    }
}

/// Copies datagram bytes `from..to` out of a fragment that starts at `frag_start`.
fn copy_range(data: &mut [u8], payload: &[u8], frag_start: u32, from: u32, to: u32) {
    let src = payload.get((from - frag_start) as usize..(to - frag_start) as usize);
    let dst = data.get_mut(from as usize..to as usize);
    if let (Some(src), Some(dst)) = (src, dst) {
        dst.copy_from_slice(src);
    }
}

/// Adds `start..end` to sorted disjoint ranges, merging what overlaps or touches.
fn insert_range(have: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    if start >= end {
        return;
    }
    let (mut s, mut e) = (start, end);
    have.retain(|&(a, b)| {
        if b < s || a > e {
            true
        } else {
            s = s.min(a);
            e = e.max(b);
            false
        }
    });
    let at = have.partition_point(|&(a, _)| a < s);
    have.insert(at, (s, e));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(offset: u32, more: bool, payload: &[u8]) -> IpFragment<'_> {
        IpFragment {
            id: 7,
            offset,
            more,
            ip_proto: 17,
            payload,
        }
    }

    struct Rig {
        d: Defragmenter,
        cfg: FlowConfig,
        stats: FlowStats,
    }

    impl Rig {
        fn new() -> Self {
            Rig {
                d: Defragmenter::default(),
                cfg: FlowConfig::default(),
                stats: FlowStats::default(),
            }
        }
        fn add(&mut self, secs: i64, f: IpFragment<'_>) -> Option<Vec<u8>> {
            let a = IpAddr::from([10, 0, 0, 1]);
            let b = IpAddr::from([10, 0, 0, 2]);
            let now = Timestamp::from_nanos(secs * 1_000_000_000);
            self.d.add(&self.cfg, now, a, b, &f, &mut self.stats)
        }
    }

    fn payload() -> Vec<u8> {
        (0..40u8).collect()
    }

    #[test]
    fn in_order_and_reversed() {
        let p = payload();
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut r = Rig::new();
            let parts = [
                frag(0, true, &p[..16]),
                frag(16, true, &p[16..32]),
                frag(32, false, &p[32..]),
            ];
            let mut done = None;
            for (n, i) in order.iter().enumerate() {
                let out = r.add(0, parts[*i]);
                assert_eq!(out.is_some(), n == 2, "{order:?}");
                done = done.or(out);
            }
            assert_eq!(done.unwrap(), p);
            assert_eq!(r.stats.fragments_reassembled, 1);
            assert_eq!(r.d.in_progress(), 0);
            assert_eq!(r.d.bytes, 0);
        }
    }

    #[test]
    fn overlap_first_copy_wins_and_duplicates_are_harmless() {
        let p = payload();
        let mut r = Rig::new();
        assert!(r.add(0, frag(0, true, &p[..24])).is_none());
        // Duplicate of the first fragment.
        assert!(r.add(0, frag(0, true, &p[..24])).is_none());
        // Overlapping rewrite of bytes 16..24 with 0xee: ignored there, new bytes kept.
        let evil = [0xee; 16];
        assert!(r.add(0, frag(16, true, &evil)).is_none());
        let out = r.add(0, frag(32, false, &p[32..])).unwrap();
        assert_eq!(&out[..24], &p[..24]);
        assert_eq!(&out[24..32], &[0xee; 8]);
        assert_eq!(&out[32..], &p[32..]);
    }

    #[test]
    fn conflicting_ends_drop_the_datagram() {
        let p = payload();
        let mut r = Rig::new();
        assert!(r.add(0, frag(32, false, &p[32..])).is_none());
        // A second "last" fragment with another end.
        assert!(r.add(0, frag(24, false, &p[24..28])).is_none());
        assert_eq!(r.d.in_progress(), 0);
        assert_eq!(r.stats.fragments_dropped, 2);
        // Data past a known end.
        assert!(r.add(0, frag(16, false, &p[16..24])).is_none());
        assert_eq!(r.d.in_progress(), 1);
        assert!(r.add(0, frag(8, true, &p[8..32])).is_none());
        assert_eq!(r.d.in_progress(), 0);
    }

    #[test]
    fn invalid_fragments_are_dropped_alone() {
        let mut r = Rig::new();
        // Non-final fragment of 5 bytes (not a multiple of 8).
        assert!(r.add(0, frag(0, true, &[1, 2, 3, 4, 5])).is_none());
        // Past 65535.
        assert!(r.add(0, frag(65_528, false, &[0; 16])).is_none());
        assert_eq!(r.stats.fragments_dropped, 2);
        assert_eq!(r.d.in_progress(), 0);
    }

    #[test]
    fn too_many_fragments() {
        let mut r = Rig::new();
        r.cfg.max_fragments_per_datagram = 4;
        let eight = [0u8; 8];
        for i in 0..4 {
            assert!(r.add(0, frag(i * 8, true, &eight)).is_none());
        }
        assert_eq!(r.d.in_progress(), 1);
        assert!(r.add(0, frag(32, false, &eight)).is_none());
        assert_eq!(r.d.in_progress(), 0);
        assert_eq!(r.stats.fragments_dropped, 5);
    }

    #[test]
    fn bounded_datagrams_bytes_and_age() {
        let mut r = Rig::new();
        r.cfg.max_fragmented_datagrams = 2;
        let eight = [0u8; 8];
        for id in 0..3 {
            let f = IpFragment {
                id,
                ..frag(8, true, &eight)
            };
            assert!(r.add(i64::from(id), f).is_none());
        }
        // The oldest (id 0) made room for id 2.
        assert_eq!(r.d.in_progress(), 2);
        assert_eq!(r.stats.fragments_dropped, 1);
        // Age: 30 s after their first fragment, both are dropped by the sweep.
        assert!(r
            .add(
                40,
                IpFragment {
                    id: 9,
                    ..frag(8, true, &eight)
                }
            )
            .is_none());
        assert_eq!(r.d.in_progress(), 1);
        assert_eq!(r.stats.fragments_dropped, 3);

        let mut r = Rig::new();
        r.cfg.max_fragment_bytes_total = 100;
        assert!(r.add(0, frag(64, true, &eight)).is_none()); // 72 bytes held
        let f = IpFragment {
            id: 8,
            ..frag(32, true, &eight)
        };
        assert!(r.add(0, f).is_none()); // would be 112: dropped
        assert_eq!(r.d.in_progress(), 1);
        assert_eq!(r.d.bytes, 72);
    }

    #[test]
    fn ranges_merge() {
        let mut h = Vec::new();
        insert_range(&mut h, 16, 24);
        insert_range(&mut h, 0, 8);
        insert_range(&mut h, 40, 48);
        assert_eq!(h, [(0, 8), (16, 24), (40, 48)]);
        insert_range(&mut h, 8, 16);
        assert_eq!(h, [(0, 24), (40, 48)]);
        insert_range(&mut h, 20, 44);
        assert_eq!(h, [(0, 48)]);
    }
}
