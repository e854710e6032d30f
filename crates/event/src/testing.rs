//! Support for the dissector crates' tests (feature `testing`).

use crate::Pdu;

/// Presents `segments` to a stream dissector's `on_data` the way the flow layer does:
/// each segment is appended to what the dissector left, and the dissector is called
/// again while it makes progress. Returns the PDUs and the bytes left unconsumed.
pub fn drive_stream(
    mut on_data: impl FnMut(&[u8], &mut Vec<Pdu>) -> usize,
    segments: &[&[u8]],
) -> (Vec<Pdu>, Vec<u8>) {
    let (mut out, mut buf) = (Vec::new(), Vec::new());
    for s in segments {
        buf.extend_from_slice(s);
        loop {
            let n = on_data(&buf, &mut out).min(buf.len());
            buf.drain(..n);
            if n == 0 || buf.is_empty() {
                break;
            }
        }
    }
    (out, buf)
}
