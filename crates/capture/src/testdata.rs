//! Builders for hand-made captures (tests only). Each writes exactly the layout of the
//! format documents, so that tests can state bytes field by field elsewhere and build
//! bigger files here.

use crate::endian::Endian;

fn put_u16(out: &mut Vec<u8>, e: Endian, v: u16) {
    out.extend_from_slice(&match e {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    });
}

fn put_u32(out: &mut Vec<u8>, e: Endian, v: u32) {
    out.extend_from_slice(&match e {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    });
}

/// One pcap record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PcapRec<'a> {
    pub(crate) secs: u32,
    pub(crate) frac: u32,
    pub(crate) data: &'a [u8],
    pub(crate) orig_len: u32,
}

/// A classic pcap file.
pub(crate) fn pcap_file(
    e: Endian,
    nanos: bool,
    dlt: u32,
    snaplen: u32,
    recs: &[PcapRec<'_>],
) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, e, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    put_u16(&mut out, e, 2);
    put_u16(&mut out, e, 4);
    put_u32(&mut out, e, 0); // thiszone
    put_u32(&mut out, e, 0); // sigfigs
    put_u32(&mut out, e, snaplen);
    put_u32(&mut out, e, dlt);
    for r in recs {
        put_u32(&mut out, e, r.secs);
        put_u32(&mut out, e, r.frac);
        put_u32(&mut out, e, r.data.len() as u32);
        put_u32(&mut out, e, r.orig_len);
        out.extend_from_slice(r.data);
    }
    out
}

/// A pcapng file under construction; blocks are appended in the current section's
/// byte order.
#[derive(Debug, Default)]
pub(crate) struct Ng {
    pub(crate) buf: Vec<u8>,
    endian: Option<Endian>,
}

impl Ng {
    pub(crate) fn new() -> Self {
        Ng::default()
    }

    fn e(&self) -> Endian {
        self.endian.unwrap_or(Endian::Little)
    }

    /// Appends a block: type, total length, body padded to 4, total length.
    /// Returns the block's offset.
    pub(crate) fn block(&mut self, btype: u32, body: &[u8]) -> usize {
        let e = self.e();
        let at = self.buf.len();
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        put_u32(&mut self.buf, e, btype);
        put_u32(&mut self.buf, e, total);
        self.buf.extend_from_slice(body);
        self.buf.resize(self.buf.len() + padded - body.len(), 0);
        put_u32(&mut self.buf, e, total);
        at
    }

    /// A section header block starting a section in byte order `e`.
    pub(crate) fn shb(&mut self, e: Endian) -> usize {
        self.endian = Some(e);
        let mut body = Vec::new();
        put_u32(&mut body, e, 0x1a2b_3c4d); // byte-order magic
        put_u16(&mut body, e, 1); // major
        put_u16(&mut body, e, 0); // minor
        body.extend_from_slice(&[0xff; 8]); // section length: unknown (-1)
        self.block(0x0a0d_0d0a, &body)
    }

    /// Options: code u16, length u16, value padded to 4; then opt_endofopt.
    pub(crate) fn options(&self, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let e = self.e();
        let mut out = Vec::new();
        if opts.is_empty() {
            return out;
        }
        for (code, val) in opts {
            put_u16(&mut out, e, *code);
            put_u16(&mut out, e, val.len() as u16);
            out.extend_from_slice(val);
            out.resize(out.len() + (4 - val.len() % 4) % 4, 0);
        }
        out.extend_from_slice(&[0; 4]);
        out
    }

    /// An interface description block.
    pub(crate) fn idb(&mut self, dlt: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> usize {
        let e = self.e();
        let mut body = Vec::new();
        put_u16(&mut body, e, dlt);
        put_u16(&mut body, e, 0); // reserved
        put_u32(&mut body, e, snaplen);
        body.extend_from_slice(&self.options(opts));
        self.block(1, &body)
    }

    /// An enhanced packet block; `ts` in the interface's units.
    pub(crate) fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig_len: u32) -> usize {
        let e = self.e();
        let mut body = Vec::new();
        put_u32(&mut body, e, iface);
        put_u32(&mut body, e, (ts >> 32) as u32);
        put_u32(&mut body, e, ts as u32);
        put_u32(&mut body, e, data.len() as u32);
        put_u32(&mut body, e, orig_len);
        body.extend_from_slice(data);
        body.resize(body.len().div_ceil(4) * 4, 0);
        // one option (opt_comment) after the data, as real writers do
        body.extend_from_slice(&self.options(&[(1, b"hi")]));
        self.block(6, &body)
    }

    /// A simple packet block.
    pub(crate) fn spb(&mut self, orig_len: u32, data: &[u8]) -> usize {
        let e = self.e();
        let mut body = Vec::new();
        put_u32(&mut body, e, orig_len);
        body.extend_from_slice(data);
        self.block(3, &body)
    }

    /// An obsolete packet block (type 2).
    pub(crate) fn pb(&mut self, iface: u16, ts: u64, data: &[u8], orig_len: u32) -> usize {
        let e = self.e();
        let mut body = Vec::new();
        put_u16(&mut body, e, iface);
        put_u16(&mut body, e, 0); // drops count
        put_u32(&mut body, e, (ts >> 32) as u32);
        put_u32(&mut body, e, ts as u32);
        put_u32(&mut body, e, data.len() as u32);
        put_u32(&mut body, e, orig_len);
        body.extend_from_slice(data);
        self.block(2, &body)
    }
}
